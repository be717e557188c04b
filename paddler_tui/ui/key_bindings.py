"""Every key binding that applies on a screen, with the user's keymap applied.

The help screen lists them and the command palette offers each as a command, so a binding added
anywhere in the app (any screen, any widget) shows up in both without being listed twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

OWN_PACKAGE = "paddler_tui."
_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


@dataclass(frozen=True)
class KeyRow:
    context: str
    keys: str
    description: str
    binding_id: str
    action: str
    # Where the action runs; None when the context has no single node (a repeated widget).
    node: DOMNode | None


def context_name(node: DOMNode) -> str:
    """``ChatSidebar`` → ``Chat sidebar``."""
    words = _WORD_START.sub(" ", type(node).__name__).split()
    return " ".join([words[0], *(word.lower() for word in words[1:])]) if words else ""


def shown_key(app: App[Any], binding_id: str, default: str) -> str:
    """How the key of ``binding_id`` is shown right now (after the keymap), else ``default``."""
    for active in app.active_bindings.values():
        if active.binding.id == binding_id:
            return app.get_key_display(active.binding)
    return default


def _own_bindings(node_type: type[DOMNode]) -> Iterator[Binding]:
    """Bindings declared by this app's classes (Textual's built-in editing keys are left out)."""
    for cls in reversed(node_type.__mro__):
        if not cls.__module__.startswith(OWN_PACKAGE):
            continue
        for item in cls.__dict__.get("BINDINGS", ()):
            yield item if isinstance(item, Binding) else Binding(*item)


def _keys(app: App[Any], binding: Binding, keymap: Mapping[str, str]) -> str:
    keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
    shown = [app.get_key_display(replace(binding, key=key.strip())) for key in keys.split(",")]
    return ", ".join(key for key in shown if key)


def key_rows(app: App[Any], screen: Screen[Any], keymap: Mapping[str, str]) -> list[KeyRow]:
    """The app's bindings, then the screen's, then each kind of widget on it, in DOM order."""
    rows: list[KeyRow] = [
        KeyRow(
            "Everywhere",
            app.get_key_display(Binding(app.COMMAND_PALETTE_BINDING, "command_palette")),
            "Command palette: every action",
            "",
            "app.command_palette",
            app,
        ),
        KeyRow(
            "Everywhere",
            app.get_key_display(Binding("ctrl+q", "quit")),
            "Quit",
            "",
            "app.quit",
            app,
        ),
    ]
    groups: dict[type[DOMNode], list[DOMNode]] = {}
    members: list[DOMNode] = [app, screen, *screen.walk_children(with_self=False)]
    for member in members:
        groups.setdefault(type(member), []).append(member)
    focused = screen.focused
    chain = set(focused.ancestors_with_self) if focused is not None else set()
    for node_type, nodes in groups.items():
        node: DOMNode | None = nodes[0]
        if len(nodes) > 1:
            # A repeated widget (a message): its keys act on the focused one, if any.
            node = next((candidate for candidate in nodes if candidate in chain), None)
        if node_type is type(app):
            context = "Everywhere"
        elif node_type is type(screen):
            context = "This screen"
        else:
            context = context_name(nodes[0])
        rows.extend(
            KeyRow(
                context,
                _keys(app, binding, keymap),
                binding.description,
                binding.id or "",
                binding.action,
                node,
            )
            for binding in _own_bindings(node_type)
            if binding.description
        )
    return rows
