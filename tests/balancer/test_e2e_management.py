"""The management service and the balancer's startup, against real balancer subprocesses.

Desired state round trips, its file database across restarts, corrupt files and ``kill -9``
(acceptance bullet 7), bind failures, and the snapshot routes (behaviour spec §1.6). No agents
are needed here, so no model is loaded.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from paddler_tui.protocol.codec import adapter_for, decode
from paddler_tui.protocol.desired_state import BalancerDesiredState, ChatTemplate
from tests.balancer.test_state_database import DEFAULT_STATE_JSON
from tests.support.cluster import (
    Cluster,
    deterministic_state,
    http_client,
    state_json,
    watch_agents,
    watch_buffer,
)
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

MakeCluster = Callable[[str], Cluster]
DESIRED = "/api/v1/balancer_desired_state"
JSON = {"content-type": "application/json"}


def with_template(content: str) -> BalancerDesiredState:
    return deterministic_state().model_copy(
        update={
            "chat_template_override": ChatTemplate(content=content),
            "use_chat_template_override": True,
        }
    )


def run_balancer(*flags: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """A balancer that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "paddler_tui", "balancer", *flags],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def memory(make_module_cluster: MakeCluster) -> Cluster:
    cluster = make_module_cluster("memory")
    cluster.start_balancer()
    return cluster


async def test_desired_state_starts_at_the_default_and_returns_what_was_put(
    memory: Cluster,
) -> None:
    url = f"{memory.b.management_url}{DESIRED}"
    state = with_template("{{ messages }}")
    async with http_client() as client:
        initial = await client.get(url)
        stored = await client.put(url, content=state_json(state), headers=JSON)
        returned = await client.get(url)
        applicable = await client.get(f"{memory.b.management_url}/api/v1/balancer_applicable_state")

    assert initial.status_code == 200
    assert initial.json() == DEFAULT_STATE_JSON
    assert (stored.status_code, stored.content) == (204, b"")
    assert returned.json() == json.loads(state_json(state))
    assert applicable.json() == json.loads(
        state_json(state).replace(b',"use_chat_template_override":true', b"")
    )


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b'{"model": "None"', 400, "invalid JSON"),
        (b"[]", 400, "Json deserialize error"),
        (
            state_json(deterministic_state())[:-1] + b',"surprise":1}',
            400,
            "surprise",
        ),
        (
            state_json(deterministic_state()).replace(b',"use_chat_template_override":false', b""),
            400,
            "use_chat_template_override",
        ),
        (
            state_json(deterministic_state()).replace(
                b'"embedding_batch_size":256', b'"embedding_batch_size":0'
            ),
            400,
            "embedding_batch_size must be greater than zero",
        ),
        (
            state_json(deterministic_state()).replace(
                b'"image_resize_to_fit":1024', b'"image_resize_to_fit":0'
            ),
            400,
            "image_resize_to_fit must be greater than zero",
        ),
        (state_json(with_template("x" * (2 * 1024 * 1024))), 413, "limit"),
    ],
    ids=[
        "malformed",
        "wrong-shape",
        "unknown-field",
        "missing-field",
        "zero-batch",
        "zero-resize",
        "too-big",
    ],
)
async def test_a_refused_desired_state_names_the_problem_and_stores_nothing(
    memory: Cluster, body: bytes, status: int, names: str
) -> None:
    url = f"{memory.b.management_url}{DESIRED}"
    async with http_client() as client:
        before = await client.get(url)
        refused = await client.put(url, content=body, headers=JSON)
        after = await client.get(url)

    assert refused.status_code == status
    assert refused.headers["content-type"].startswith("text/plain")
    assert names in refused.text
    assert after.json() == before.json()


async def test_a_desired_state_must_be_sent_as_json(memory: Cluster) -> None:
    async with http_client() as client:
        refused = await client.put(
            f"{memory.b.management_url}{DESIRED}",
            content=state_json(deterministic_state()),
            headers={"content-type": "text/plain"},
        )
    assert refused.status_code == 400
    assert "Content-Type" in refused.text


async def test_health_and_empty_snapshots(memory: Cluster) -> None:
    async with http_client() as client:
        for url in (memory.b.management_url, memory.b.inference_url):
            health = await client.get(f"{url}/health")
            assert (health.status_code, health.text) == (200, "OK")
        agents = await client.get(f"{memory.b.management_url}/api/v1/agents")
        buffered = await client.get(f"{memory.b.management_url}/api/v1/buffered_requests")
    assert agents.json() == {"agents": []}
    assert buffered.json() == {"buffered_requests_current": 0}
    async with watch_agents(memory.b) as agent_stream, watch_buffer(memory.b) as buffer_stream:
        assert agent_stream.latest.agents == []
        assert buffer_stream.latest.buffered_requests_current == 0


async def test_embeddings_without_any_agent_are_a_503(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("embeddings-no-agents")
    cluster.start_balancer()
    cluster.put_state(deterministic_state(enable_embeddings=True))
    body = {"input_batch": [{"id": "1", "content": "x"}], "normalization_method": "L2"}
    async with http_client() as client:
        response = await client.post(
            f"{cluster.b.inference_url}/api/v1/generate_embedding_batch", json=body
        )
    assert (response.status_code, response.text) == (503, "No agents are currently connected")


async def test_the_desired_state_survives_a_restart_with_a_file_database(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    path = tmp_path / "state.json"
    cluster = make_cluster("restart")
    cluster.start_balancer("--state-database", f"file://{path}")
    state = with_template("{{ messages }} ünïcode")
    cluster.put_state(state)
    cluster.b.stop()
    assert cluster.b.wait(5) == 0

    cluster.start_balancer("--state-database", f"file://{path}", name="restarted")
    async with http_client() as client:
        returned = await client.get(f"{cluster.b.management_url}{DESIRED}")

    assert returned.json() == json.loads(state_json(state))
    document = json.loads(path.read_bytes())
    assert document == {"balancer_desired_state": returned.json(), "version": "1"}


async def test_a_corrupt_state_file_stops_startup_with_a_message_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corrupt.json"
    path.write_text('{"balancer_desired_state": {')

    finished = await asyncio.to_thread(
        run_balancer,
        "--state-database",
        f"file://{path}",
        "--inference-addr",
        f"127.0.0.1:{free_port()}",
        "--management-addr",
        f"127.0.0.1:{free_port()}",
    )

    assert finished.returncode != 0
    assert f"Unable to parse database file contents: '{path}'" in finished.stderr
    assert path.read_text() == '{"balancer_desired_state": {'  # left for the operator


async def test_a_relative_state_file_path_is_refused_with_the_absolute_hint() -> None:
    finished = await asyncio.to_thread(run_balancer, "--state-database", "file://state.json")

    assert finished.returncode != 0
    assert "requires absolute paths" in finished.stderr
    assert f"file://{Path.cwd() / 'state.json'}" in finished.stderr


async def put_until_stopped(
    url: str, writer: int, put: list[BalancerDesiredState], stop: asyncio.Event
) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        counter = 0
        while not stop.is_set():
            counter += 1
            # Large, varying sizes: a torn write would show as a truncated document.
            state = with_template(f"{writer}-{counter}-" + "x" * random.randint(1, 300_000))
            put.append(state)
            try:
                await client.put(url, content=state_json(state), headers=JSON)
            except httpx.HTTPError:
                return


async def test_kill_9_during_a_stream_of_puts_never_leaves_a_file_that_fails_to_parse(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    adapter = adapter_for(BalancerDesiredState)
    for round_number in range(3):
        path = tmp_path / f"state-{round_number}.json"
        cluster = make_cluster(f"kill-9-{round_number}")
        cluster.start_balancer("--state-database", f"file://{path}")
        url = f"{cluster.b.management_url}{DESIRED}"
        put: list[BalancerDesiredState] = [BalancerDesiredState.default()]
        stop = asyncio.Event()

        writers = [asyncio.create_task(put_until_stopped(url, w, put, stop)) for w in range(3)]
        await asyncio.sleep(random.uniform(0.3, 0.8))
        cluster.b.signal(signal.SIGKILL)
        stop.set()
        await asyncio.gather(*writers)
        await asyncio.to_thread(cluster.b.wait, 5)

        document = json.loads(path.read_bytes())
        assert document["version"] == "1"
        survived: BalancerDesiredState = decode(
            adapter, json.dumps(document["balancer_desired_state"])
        )
        assert survived in put
        assert len(put) > 3  # PUTs were really in flight when the balancer died


@pytest.mark.parametrize("service", ["inference", "management"])
async def test_a_taken_address_exits_non_zero_naming_the_service_and_address(service: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        addresses = {
            "inference": f"127.0.0.1:{free_port()}",
            "management": f"127.0.0.1:{free_port()}",
        }
        addresses[service] = f"127.0.0.1:{port}"

        finished = await asyncio.to_thread(
            run_balancer,
            "--inference-addr",
            addresses["inference"],
            "--management-addr",
            addresses["management"],
        )

    assert finished.returncode != 0
    assert f"Unable to bind {service} service to 127.0.0.1:{port}" in finished.stderr


async def test_a_state_file_that_breaks_while_running_is_a_500_naming_it(
    make_cluster: MakeCluster, tmp_path: Path
) -> None:
    directory = tmp_path / "state"
    directory.mkdir()
    path = directory / "state.json"
    cluster = make_cluster("broken-file")
    cluster.start_balancer("--state-database", f"file://{path}")
    url = f"{cluster.b.management_url}{DESIRED}"

    async with http_client() as client:
        path.write_text("not json")  # reads go to the file every time
        unreadable = await client.get(url)
        path.unlink()
        directory.rmdir()  # now the next write has nowhere to go
        unwritable = await client.put(url, content=state_json(deterministic_state()), headers=JSON)

    assert unreadable.status_code == 500
    assert f"Unable to parse database file contents: '{path}'" in unreadable.text
    assert unwritable.status_code == 500
    assert f"Unable to write the state database file '{path}'" in unwritable.text
