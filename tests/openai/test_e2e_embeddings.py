"""``/v1/embeddings`` through the embedding batch path, on a real agent in embeddings mode."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from tests.openai.conftest import openai_client
from tests.support.cluster import Cluster, greedy_state

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedding_cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    # Batches of 2 split a request over several slots.
    state = greedy_state(enable_embeddings=True, embedding_batch_size=2)
    return make_module_cluster("embeddings").start(openai=True, agents=1, slots=2, state=state)


def test_one_unit_vector_per_input_in_input_order(embedding_cluster: Cluster) -> None:
    inputs = ["alpha", "a much longer sentence about beta", "gamma", "alpha", "delta"]
    # The client asks for base64 unless told otherwise, and decodes it.
    answer = openai_client(embedding_cluster).embeddings.create(model="smol", input=inputs)
    assert answer.model == "smol"
    assert [item.index for item in answer.data] == list(range(len(inputs)))
    vectors = [item.embedding for item in answer.data]
    assert len({len(vector) for vector in vectors}) == 1
    assert all(math.isclose(math.hypot(*vector), 1.0, abs_tol=1e-4) for vector in vectors)
    assert vectors[0] == vectors[3]
    assert vectors[0] != vectors[2]


def test_float_encoding_and_a_single_string(embedding_cluster: Cluster) -> None:
    client = openai_client(embedding_cluster)
    floats = client.embeddings.create(model="smol", input="alpha", encoding_format="float")
    decoded = client.embeddings.create(model="smol", input="alpha")
    [item] = floats.data
    assert item.embedding == pytest.approx(decoded.data[0].embedding, abs=1e-6)
