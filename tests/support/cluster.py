"""Real clusters for the end-to-end tests and benches, and a fake agent for exact timing.

- :class:`Cluster` starts a real ``paddler-tui balancer`` subprocess on free 127.0.0.1 ports (a
  port lost to a race between picking and binding is picked again), real ``paddler-tui agent``
  subprocesses, PUTs a desired state with the default model and waits until
  ``/api/v1/agents`` shows every slot ready. Every process logs to a file in the test's
  directory (never a pipe) and is stopped by pid: SIGTERM, then SIGKILL. Every balancer and
  agent the tests and benches run comes from here; the agent tests use :class:`AgentProcess`
  alone, against their in-process fake balancer.
- :class:`FakeAgent` speaks the real agent protocol (the real codecs over a real WebSocket) and
  answers only when the test says so: send tokens, stay silent, close.
- :class:`SnapshotWatcher` follows an SSE stream (``/api/v1/agents/stream``,
  ``/api/v1/buffered_requests/stream``) and keeps every snapshot, so tests assert on what the
  balancer published rather than on request bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import httpx
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from paddler_tui.api_key import API_KEY_ENV, authorization_headers
from paddler_tui.models import default_model_path
from paddler_tui.protocol.agent_socket import (
    AgentToBalancerMessage,
    FromAgentNotificationEnvelope,
    FromAgentResponse,
    FromAgentResponseEnvelope,
    RegisterAgent,
    SetState,
    ToAgentNotificationEnvelope,
    ToAgentRequestEnvelope,
    decode_balancer_to_agent_message,
    encode_agent_to_balancer_message,
)
from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot, BufferedRequestsSnapshot
from paddler_tui.protocol.codec import adapter_for, decode, encode
from paddler_tui.protocol.desired_state import AgentDesiredState, BalancerDesiredState
from paddler_tui.protocol.envelope import StopRespondingTo
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    decode_inference_server_message,
)
from paddler_tui.protocol.model_source import LocalToAgent
from tests.support.agent_status import status
from tests.support.generated_tokens import done
from tests.support.ports import free_port

STARTUP_S = 20.0
MODEL_READY_S = 60.0
STOP_GRACE_S = 5.0
BIND_ATTEMPTS = 5

# With deterministic sampling and no penalties the default model keeps counting until
# max_tokens runs out, so a request with this prompt is as long as the test needs.
COUNTING_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8,"

T = TypeVar("T", bound=BaseModel)


def greedy_parameters(**parameters: object) -> InferenceParameters:
    """Paddler's defaults, greedy and with a small context unless told otherwise."""
    merged: dict[str, object] = {"temperature": 0.0, "context_size": 2048, **parameters}
    return InferenceParameters.default().model_copy(update=merged)


def greedy_state(**parameters: object) -> BalancerDesiredState:
    """The default model with :func:`greedy_parameters`."""
    return BalancerDesiredState.default().model_copy(
        update={
            "model": LocalToAgent(value=str(default_model_path())),
            "inference_parameters": greedy_parameters(**parameters),
        }
    )


def deterministic_state(**parameters: object) -> BalancerDesiredState:
    """The default model, sampled like Paddler's ``InferenceParameters::deterministic()``."""
    deterministic: dict[str, object] = {
        "top_k": 1,
        "top_p": 1.0,
        "min_p": 0.0,
        "penalty_repeat": 1.0,
        "penalty_presence": 0.0,
        "penalty_frequency": 0.0,
    }
    return greedy_state(**{**deterministic, **parameters})


def state_json(state: BalancerDesiredState) -> bytes:
    return encode(adapter_for(BalancerDesiredState), state)


def raw_prompt_body(max_tokens: int, prompt: str = COUNTING_PROMPT) -> dict[str, object]:
    return {"raw_prompt": prompt, "max_tokens": max_tokens}


class Process:
    """A ``python -m paddler_tui`` subprocess whose stderr goes to a log file."""

    def __init__(self, arguments: Sequence[str], *, log: Path, env: dict[str, str]) -> None:
        self.log = log
        with log.open("w") as stream:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "paddler_tui", *arguments],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stream,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after the grace period."""
        if not self.running():
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        """The end of the log under the log's name, for the report of a failed test."""
        return f"--- {self.log.name} ---\n{self.log_text()[-6000:]}"


class AgentProcess(Process):
    """A ``paddler-tui agent`` registering with the management service at ``management_addr``."""

    def __init__(
        self,
        management_addr: str,
        *flags: str,
        slots: int,
        name: str,
        log: Path,
        env: dict[str, str],
        threads: int | None = None,
    ) -> None:
        self.name = name
        arguments = ["agent", "--management-addr", management_addr, "--slots", str(slots)]
        arguments += ["--name", name, *flags]
        # None: as many threads as llama.cpp picks for this machine.
        arguments += ["--threads", str(threads)] if threads is not None else []
        super().__init__(arguments, log=log, env=env)


class BalancerProcess(Process):
    def __init__(
        self,
        flags: Sequence[str],
        *,
        log: Path,
        env: dict[str, str],
        inference: str,
        management: str,
        openai: str | None = None,
    ) -> None:
        self.flags = tuple(flags)
        self.inference_addr = inference
        self.management_addr = management
        self.openai_addr = openai
        # What every client of this balancer sends: the API key from its environment, if any.
        self.headers = authorization_headers(env.get(API_KEY_ENV))
        arguments = ["balancer", "--inference-addr", inference, "--management-addr", management]
        arguments += ["--compat-openai-addr", openai] if openai is not None else []
        super().__init__([*arguments, *flags], log=log, env=env)

    @property
    def inference_url(self) -> str:
        return f"http://{self.inference_addr}"

    @property
    def management_url(self) -> str:
        return f"http://{self.management_addr}"

    @property
    def openai_url(self) -> str:
        assert self.openai_addr is not None, "start the balancer with openai=True"
        return f"http://{self.openai_addr}"

    @property
    def inference_socket_url(self) -> str:
        return f"ws://{self.inference_addr}/api/v1/inference_socket"

    def agent_socket_url(self, agent_id: str) -> str:
        return f"ws://{self.management_addr}/api/v1/agent_socket/{agent_id}"

    def wait_until_healthy(self) -> bool:
        """True once every service answers /health; False if the process ended first."""
        urls = [self.management_url, self.inference_url]
        urls += [self.openai_url] if self.openai_addr is not None else []
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if not self.running():
                return False
            with contextlib.suppress(httpx.HTTPError):
                if all(httpx.get(f"{url}/health", timeout=1).text == "OK" for url in urls):
                    return True
            time.sleep(0.05)
        raise RuntimeError(f"the balancer did not become healthy:\n{self.log_text()}")

    @classmethod
    def start(
        cls, directory: Path, *flags: str, env: dict[str, str], name: str, openai: bool = False
    ) -> BalancerProcess:
        """A healthy balancer on fresh free ports; ports lost to a race are picked again.

        ``openai`` adds the OpenAI-compatible service on a port of its own.
        """
        for attempt in range(BIND_ATTEMPTS):
            log = directory / f"{name}.log" if attempt == 0 else directory / f"{name}-{attempt}.log"
            balancer = cls(
                flags,
                log=log,
                env=env,
                inference=f"127.0.0.1:{free_port()}",
                management=f"127.0.0.1:{free_port()}",
                openai=f"127.0.0.1:{free_port()}" if openai else None,
            )
            if balancer.wait_until_healthy():
                return balancer
            if "Unable to bind" not in balancer.log_text():
                raise RuntimeError(f"the balancer exited at startup:\n{balancer.log_text()}")
        raise RuntimeError(f"no free ports after {BIND_ATTEMPTS} attempts")


@dataclass
class Cluster:
    """One balancer and its real agents; every process is stopped by :meth:`stop`."""

    directory: Path
    env: dict[str, str]
    balancer: BalancerProcess | None = None
    agents: list[AgentProcess] = field(default_factory=list)
    retired: list[Process] = field(default_factory=list)

    @property
    def b(self) -> BalancerProcess:
        assert self.balancer is not None, "start_balancer() first"
        return self.balancer

    def start_balancer(
        self, *flags: str, name: str = "balancer", openai: bool = False
    ) -> BalancerProcess:
        if self.balancer is not None:
            self.retired.append(self.balancer)
        self.balancer = BalancerProcess.start(
            self.directory, *flags, env=self.env, name=name, openai=openai
        )
        return self.balancer

    def restart_balancer(self) -> BalancerProcess:
        """A new balancer with the old one's flags and addresses, so its clients reconnect.

        The old one is stopped first unless the test has already stopped or killed it.
        """
        old = self.b
        old.stop()
        self.retired.append(old)
        self.balancer = BalancerProcess(
            old.flags,
            log=self.directory / f"balancer-restart-{len(self.retired)}.log",
            env=self.env,
            inference=old.inference_addr,
            management=old.management_addr,
            openai=old.openai_addr,
        )
        if not self.balancer.wait_until_healthy():
            raise RuntimeError(f"the balancer did not start again:\n{self.balancer.log_text()}")
        return self.balancer

    def start_agent(
        self, *flags: str, slots: int, name: str | None = None, threads: int = 1
    ) -> AgentProcess:
        name = name if name is not None else f"agent-{len(self.agents) + 1}"
        agent = AgentProcess(
            self.b.management_addr,
            *flags,
            slots=slots,
            name=name,
            log=self.directory / f"{name}.log",
            env=self.env,
            threads=threads,
        )
        self.agents.append(agent)
        return agent

    def agent_named(self, name: str) -> AgentProcess:
        (agent,) = [agent for agent in self.agents if agent.name == name]
        return agent

    def put_state(self, state: BalancerDesiredState) -> None:
        response = httpx.put(
            f"{self.b.management_url}/api/v1/balancer_desired_state",
            content=state_json(state),
            headers={"content-type": "application/json", **self.b.headers},
            timeout=10,
        )
        assert response.status_code == 204, response.text

    def agents_snapshot(self) -> AgentControllerPoolSnapshot:
        response = httpx.get(
            f"{self.b.management_url}/api/v1/agents", headers=self.b.headers, timeout=5
        )
        snapshot: AgentControllerPoolSnapshot = decode(
            adapter_for(AgentControllerPoolSnapshot), response.content
        )
        return snapshot

    def slots_processing(self) -> int:
        return busy(self.agents_snapshot())

    def wait_for_agents(self, count: int, *, slots_each: int) -> AgentControllerPoolSnapshot:
        """Until ``count`` agents show ``slots_each`` ready, idle slots; issues fail at once."""
        deadline = time.monotonic() + MODEL_READY_S
        while time.monotonic() < deadline:
            snapshot = self.agents_snapshot()
            for agent in snapshot.agents:
                if agent.issues:
                    raise RuntimeError(f"agent {agent.name} has issues: {agent.issues}")
            ready = [
                a
                for a in snapshot.agents
                if a.slots_total == slots_each
                and a.slots_processing == 0
                and a.state_application_status == "Applied"
            ]
            if len(snapshot.agents) == count and len(ready) == count:
                return snapshot
            time.sleep(0.05)
        raise RuntimeError(f"the agents did not get ready:\n{self.dump_logs()}")

    def start(
        self,
        *flags: str,
        agents: int,
        slots: int,
        state: BalancerDesiredState | None = None,
        names: Sequence[str] | None = None,
        openai: bool = False,
        agent_flags: Sequence[str] = (),
    ) -> Cluster:
        """Balancer (with ``flags``), desired state, then the agents (with ``agent_flags``, all
        at once), and wait for their slots."""
        self.start_balancer(*flags, openai=openai)
        self.put_state(state if state is not None else deterministic_state())
        for index in range(agents):
            self.start_agent(*agent_flags, slots=slots, name=names[index] if names else None)
        if agents:
            self.wait_for_agents(agents, slots_each=slots)
        return self

    def stop(self) -> None:
        """SIGTERM to every process at once, then SIGKILL to whatever outlives the grace."""
        processes = [*self.agents, *([self.balancer] if self.balancer else []), *self.retired]
        for process in processes:
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for process in processes:
            try:
                process.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                process.kill()

    def dump_logs(self) -> str:
        processes = [*self.retired, *([self.balancer] if self.balancer else []), *self.agents]
        return "\n".join(process.log_tail() for process in processes)


def cluster_env(directory: Path) -> dict[str, str]:
    env = dict(os.environ)
    # A key in the developer's shell must not leak into clusters that do not expect one.
    env.pop(API_KEY_ENV, None)
    env["PADDLER_CACHE_DIR"] = str(directory / "cache")
    env["HF_HOME"] = str(directory / "hf")
    return env


@contextlib.contextmanager
def clusters(directory_for: Callable[[str], Path]) -> Iterator[Callable[[str], Cluster]]:
    """A factory of clusters that are all stopped (and their logs printed) on exit."""
    made: list[Cluster] = []

    def make(name: str) -> Cluster:
        directory = directory_for(name)
        cluster = Cluster(directory, cluster_env(directory))
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()
        for cluster in made:
            # pytest shows this only for a failed test.
            print(cluster.dump_logs())


# Clients.


def http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=5.0))


async def ndjson(
    client: httpx.AsyncClient, url: str, body: object
) -> AsyncGenerator[InferenceServerMessage, None]:
    """Every NDJSON envelope of a streaming POST (which must answer 200)."""
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-cache"
        async for line in response.aiter_lines():
            if line:
                yield decode_inference_server_message(line)


async def next_message(stream: AsyncIterator[InferenceServerMessage]) -> InferenceServerMessage:
    """``anext`` as a coroutine, so it can run as a task while the test plays the agent."""
    return await anext(stream)


async def collect(
    client: httpx.AsyncClient, url: str, body: object
) -> list[InferenceServerMessage]:
    return [message async for message in ndjson(client, url, body)]


class SnapshotWatcher(Generic[T]):
    """Follows one SSE stream in the background and keeps every snapshot it publishes."""

    def __init__(self, url: str, model: type[T], headers: dict[str, str] | None = None) -> None:
        self.url = url
        self._adapter = adapter_for(model)
        self.snapshots: list[T] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=5.0), headers=headers)
        self.ended = asyncio.Event()

    async def __aenter__(self) -> SnapshotWatcher[T]:
        self._task = asyncio.create_task(self._follow())
        await self.until(lambda _: True)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        await self._client.aclose()

    @property
    def latest(self) -> T:
        return self.snapshots[-1]

    async def _follow(self) -> None:
        try:
            async with self._client.stream("GET", self.url) as response:
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        snapshot: T = decode(self._adapter, line.removeprefix("data: "))
                        async with self._changed:
                            self.snapshots.append(snapshot)
                            self._changed.notify_all()
        finally:
            self.ended.set()
            async with self._changed:
                self._changed.notify_all()

    async def until(self, predicate: Callable[[T], bool], timeout: float = 10.0) -> T:
        """The first snapshot from now on (the latest included) that satisfies ``predicate``."""
        seen = max(len(self.snapshots) - 1, 0)
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for snapshot in self.snapshots[seen:]:
                    if predicate(snapshot):
                        return snapshot
                seen = len(self.snapshots)
                if self.ended.is_set():
                    raise AssertionError(f"the stream {self.url} ended")
                await self._changed.wait()


def watch_agents(balancer: BalancerProcess) -> SnapshotWatcher[AgentControllerPoolSnapshot]:
    return SnapshotWatcher(
        f"{balancer.management_url}/api/v1/agents/stream",
        AgentControllerPoolSnapshot,
        balancer.headers,
    )


def watch_buffer(balancer: BalancerProcess) -> SnapshotWatcher[BufferedRequestsSnapshot]:
    return SnapshotWatcher(
        f"{balancer.management_url}/api/v1/buffered_requests/stream",
        BufferedRequestsSnapshot,
        balancer.headers,
    )


def busy(snapshot: AgentControllerPoolSnapshot) -> int:
    return sum(agent.slots_processing for agent in snapshot.agents)


# The fake agent.


class FakeAgent:
    """An agent under the test's control, speaking the real protocol on a real socket.

    It registers with ``slots`` ready slots (as an agent with a loaded model would) and then only
    records what the balancer sends: requests queue up in :attr:`requests`, stops in
    :attr:`stops`, desired states in :attr:`states`. It answers only through :meth:`respond`;
    ``answer_stops`` makes it confirm every ``StopRespondingTo`` with a ``Done`` like a real
    agent does.
    """

    def __init__(
        self,
        balancer: BalancerProcess,
        *,
        slots: int,
        name: str = "fake",
        agent_id: str | None = None,
        answer_stops: bool = False,
    ) -> None:
        self.balancer = balancer
        self.slots = slots
        self.name = name
        self.agent_id = agent_id if agent_id is not None else new_id()
        self.answer_stops = answer_stops
        self.requests: asyncio.Queue[ToAgentRequestEnvelope] = asyncio.Queue()
        self.stops: asyncio.Queue[str] = asyncio.Queue()
        self.states: asyncio.Queue[AgentDesiredState] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._socket: ClientConnection | None = None
        self._reading: asyncio.Task[None] | None = None

    async def connect(self) -> FakeAgent:
        self._socket = await connect(
            self.balancer.agent_socket_url(self.agent_id), additional_headers=self.balancer.headers
        )
        await self._send(
            FromAgentNotificationEnvelope(
                value=RegisterAgent(
                    name=self.name,
                    slot_aggregated_status_snapshot=status(slots_total=self.slots, version=1),
                )
            )
        )
        self._reading = asyncio.create_task(self._read())
        return self

    async def __aenter__(self) -> FakeAgent:
        return await self.connect()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _send(self, message: AgentToBalancerMessage) -> None:
        assert self._socket is not None
        await self._socket.send(encode_agent_to_balancer_message(message).decode())

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for frame in self._socket:
                message = decode_balancer_to_agent_message(frame)
                if isinstance(message, ToAgentRequestEnvelope):
                    self.requests.put_nowait(message)
                elif isinstance(message, ToAgentNotificationEnvelope) and isinstance(
                    message.value, SetState
                ):
                    self.states.put_nowait(message.value.desired_state)
                elif isinstance(message, ToAgentNotificationEnvelope) and isinstance(
                    message.value, StopRespondingTo
                ):
                    self.stops.put_nowait(message.value.value)
                    if self.answer_stops:
                        await self.respond(message.value.value, done())
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self._socket.close_code
            self.closed.set()

    async def next_request(self, timeout: float = 10.0) -> ToAgentRequestEnvelope:
        return await asyncio.wait_for(self.requests.get(), timeout)

    async def next_state(self, timeout: float = 10.0) -> AgentDesiredState:
        return await asyncio.wait_for(self.states.get(), timeout)

    async def next_stop(self, timeout: float = 10.0) -> str:
        return await asyncio.wait_for(self.stops.get(), timeout)

    async def respond(self, request_id: str, response: FromAgentResponse) -> None:
        await self._send(FromAgentResponseEnvelope(request_id=request_id, response=response))

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reading is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading


def socket_request(request_id: str, max_tokens: int, prompt: str = COUNTING_PROMPT) -> str:
    """An inference socket frame asking for a raw-prompt continuation."""
    return json.dumps(
        {
            "Request": {
                "id": request_id,
                "request": {"ContinueFromRawPrompt": raw_prompt_body(max_tokens, prompt)},
            }
        }
    )


def socket_stop(request_id: str) -> str:
    return json.dumps({"Notification": {"StopRespondingTo": request_id}})


async def raw_post(
    addr: str, path: str, body: object
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.1 POST, so a test can half-close it (``writer.write_eof()``) at will."""
    host, port = addr.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    payload = json.dumps(body).encode()
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    await writer.drain()
    return reader, writer


async def first_ndjson_line(reader: asyncio.StreamReader) -> bytes:
    """Skip the status line and headers of a 200 response; the first chunk's JSON line."""
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    while b"Response" not in (line := await reader.readline()):
        pass
    return line
