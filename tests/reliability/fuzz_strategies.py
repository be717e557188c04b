"""Hypothesis strategies for bad input: random JSON, and valid messages mutated a little.

Mutations keep most of a valid message, so they get past the first checks and probe the deeper
ones: a key dropped, a value replaced by random JSON (of another type, out of range, huge), an
unknown key added, at any depth.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

# Integers beyond every wire range (i32, u32, u64) as well as inside them.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.integers(min_value=-3, max_value=300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (dict keys and list indexes)."""
    places: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            places += [(*path, key), *_places(child, (*path, key))]
    elif isinstance(value, list):
        for index, child in enumerate(value):
            places += [(*path, index), *_places(child, (*path, index))]
    return places


def _parent(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        value = value[step]
    return value


@st.composite
def mutated(draw: st.DrawFn, seed: Any) -> Any:
    """``seed`` with one to three mutations."""
    value = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = _places(value)
        if not places:
            return draw(json_values)
        path = draw(st.sampled_from(places))
        parent = _parent(value, path)
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(json_values)
        else:
            parent.append(draw(json_values))
    return value


def encoded(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """JSON text; non-finite floats become ``NaN``/``Infinity``, which strict parsers refuse."""
    return values.map(json.dumps)


def bodies(seed: Any) -> st.SearchStrategy[bytes]:
    """What a client might send as a JSON body: mutated, random, or not JSON at all."""
    return st.one_of(
        encoded(mutated(seed)).map(str.encode),
        encoded(json_values).map(str.encode),
        st.binary(max_size=64),
    )
