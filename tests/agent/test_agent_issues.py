"""Every AgentIssue the agent reports while applying a state: provoked, then cleared."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paddler_tui.models import default_model_path
from paddler_tui.protocol.agent_issue import (
    ChatTemplateDoesNotCompile,
    DownloadInterrupted,
    HuggingFaceModelDoesNotExist,
    HuggingFacePermissions,
    ModelCannotBeLoaded,
    ModelDoesNotExistAtUrl,
    ModelFileDoesNotExist,
    ModelPath,
    SlotCannotStart,
    UnableToFindChatTemplate,
)
from paddler_tui.protocol.agent_status import SlotAggregatedStatusSnapshot
from paddler_tui.protocol.embedding import (
    L2,
    EmbeddingDone,
    EmbeddingInputDocument,
    EmbeddingProduced,
)
from paddler_tui.protocol.envelope import GenerateEmbeddingBatch
from paddler_tui.protocol.model_source import HuggingFace, LocalToAgent, Url
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from tests.agent.balancer_endpoint import AgentRecord, BalancerEndpoint
from tests.agent.conftest import desired_state
from tests.agent.gguf_files import copy_gguf
from tests.agent.http_file_server import FakeServer
from tests.support.cluster import AgentProcess

pytestmark = pytest.mark.slow

StartAgent = Callable[..., AgentProcess]
SLOTS = 2


@pytest.fixture
def model_server() -> Iterator[FakeServer]:
    server = FakeServer(default_model_path().read_bytes())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub_server(agent_env: dict[str, str]) -> Iterator[FakeServer]:
    server = FakeServer()
    server.start()
    agent_env["HF_ENDPOINT"] = server.base_url
    agent_env.pop("HF_HUB_OFFLINE", None)
    yield server
    server.stop()


async def registered(endpoint: BalancerEndpoint, start_agent: StartAgent) -> AgentRecord:
    start_agent(slots=SLOTS)
    return await endpoint.agent()


def is_serving(status: SlotAggregatedStatusSnapshot) -> bool:
    return (
        status.state_application_status == "Applied"
        and status.slots_total == SLOTS
        and not status.issues
    )


async def test_missing_local_file_then_the_file_appears(
    endpoint: BalancerEndpoint, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = await registered(endpoint, start_agent)
    path = tmp_path / "later.gguf"
    await endpoint.set_state(agent, desired_state(LocalToAgent(value=str(path))))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert status.issues == [ModelFileDoesNotExist(model_path=str(path))]
    assert status.slots_total == 0
    stuck = await endpoint.wait_for_status(agent, lambda s: s.state_application_status == "Stuck")
    assert stuck.issues == status.issues
    os.symlink(default_model_path(), path)
    await endpoint.wait_for_status(agent, is_serving)


async def test_a_file_that_is_not_a_model_then_a_good_one(
    endpoint: BalancerEndpoint, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = await registered(endpoint, start_agent)
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    await endpoint.set_state(agent, desired_state(LocalToAgent(value=str(path))))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert status.issues == [ModelCannotBeLoaded(model_path=str(path))]
    assert status.slots_total == 0
    path.unlink()
    os.symlink(default_model_path(), path)
    await endpoint.wait_for_status(agent, is_serving)


async def test_a_model_without_a_chat_template_then_an_override(
    endpoint: BalancerEndpoint, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = await registered(endpoint, start_agent)
    path = tmp_path / "no-template.gguf"
    copy_gguf(default_model_path(), path, drop="tokenizer.chat_template")
    await endpoint.set_state(agent, desired_state(LocalToAgent(value=str(path))))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert status.issues == [UnableToFindChatTemplate(model_path=str(path))]
    template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    await endpoint.set_state(agent, desired_state(LocalToAgent(value=str(path)), template=template))
    await endpoint.wait_for_status(agent, is_serving)


async def test_a_model_without_a_chat_template_is_fine_for_embeddings(
    endpoint: BalancerEndpoint, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = await registered(endpoint, start_agent)
    path = tmp_path / "no-template.gguf"
    copy_gguf(default_model_path(), path, drop="tokenizer.chat_template")
    state = desired_state(LocalToAgent(value=str(path)), enable_embeddings=True)
    await endpoint.set_state(agent, state)
    await endpoint.wait_for_status(agent, is_serving)
    documents = [EmbeddingInputDocument(id="doc", content="Embedded without a template.")]
    params = GenerateEmbeddingBatchParams(input_batch=documents, normalization_method=L2())
    request_id = await endpoint.request(agent, GenerateEmbeddingBatch(value=params))
    results = await endpoint.embeddings(agent, request_id)
    assert [type(result) for result in results] == [EmbeddingProduced, EmbeddingDone]


async def test_a_template_that_does_not_compile_then_a_good_one(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await registered(endpoint, start_agent)
    bad = "{% if %}"
    await endpoint.set_state(agent, desired_state(template=bad))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert len(status.issues) == 1
    issue = status.issues[0]
    assert isinstance(issue, ChatTemplateDoesNotCompile)
    assert issue.model_path == ModelPath(model_path=str(default_model_path()))
    assert issue.template_content == bad
    assert issue.error
    status = await endpoint.wait_for_status(
        agent, lambda s: s.state_application_status == "AttemptedAndNotAppliable"
    )
    assert status.slots_total == 0
    await endpoint.set_state(agent, desired_state())
    await endpoint.wait_for_status(agent, is_serving)


async def test_a_context_that_cannot_be_created_then_one_that_can(
    endpoint: BalancerEndpoint, start_agent: StartAgent
) -> None:
    agent = await registered(endpoint, start_agent)
    # A KV cache of ~200 GB: the allocation fails at once on a 24 GB machine.
    await endpoint.set_state(agent, desired_state(context_size=2**24, n_batch=512))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert all(isinstance(issue, SlotCannotStart) and issue.error for issue in status.issues)
    slots = [issue.slot_index for issue in status.issues if isinstance(issue, SlotCannotStart)]
    assert sorted(slots) == list(range(SLOTS))
    await endpoint.set_state(agent, desired_state())
    await endpoint.wait_for_status(agent, is_serving)


async def test_a_url_that_is_not_there_then_is(
    endpoint: BalancerEndpoint, start_agent: StartAgent, model_server: FakeServer
) -> None:
    agent = await registered(endpoint, start_agent)
    url = f"{model_server.base_url}/models/smollm2.gguf"
    model_server.statuses["/models/smollm2.gguf"] = (404, {})
    await endpoint.set_state(agent, desired_state(Url(url=url)))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert status.issues == [ModelDoesNotExistAtUrl(model_path=url)]
    del model_server.statuses["/models/smollm2.gguf"]
    await endpoint.wait_for_status(agent, is_serving)


async def test_an_interrupted_download_resumes_and_reports_progress(
    endpoint: BalancerEndpoint, start_agent: StartAgent, model_server: FakeServer
) -> None:
    agent = await registered(endpoint, start_agent)
    url = f"{model_server.base_url}/models/smollm2.gguf"
    size = len(model_server.payload)
    model_server.cut_next = 1
    model_server.chunk_delay = 0.02
    await endpoint.set_state(agent, desired_state(Url(url=url)))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert status.issues == [DownloadInterrupted(model_path=url)]
    downloading = await endpoint.wait_for_status(
        agent, lambda s: s.download_total == size and 0 < s.download_current < size
    )
    assert downloading.download_filename == "smollm2.gguf"
    assert not downloading.download_indeterminate
    final = await endpoint.wait_for_status(agent, is_serving)
    assert final.download_total == 0 and final.download_filename is None
    ranges = model_server.ranges()
    assert ranges[0] is None
    assert ranges[1] is not None and ranges[1].startswith("bytes=")
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0


@pytest.mark.parametrize(
    ("status_code", "issue_type"),
    [(404, HuggingFaceModelDoesNotExist), (401, HuggingFacePermissions)],
)
async def test_huggingface_errors_then_another_source(
    endpoint: BalancerEndpoint,
    start_agent: StartAgent,
    hub_server: FakeServer,
    status_code: int,
    issue_type: type[HuggingFaceModelDoesNotExist | HuggingFacePermissions],
) -> None:
    source = HuggingFace(filename="m.gguf", repo_id="someone/model", revision="main")
    hub_server.statuses["/someone/model/resolve/main/m.gguf"] = (status_code, {})
    agent = await registered(endpoint, start_agent)
    await endpoint.set_state(agent, desired_state(source))
    status = await endpoint.wait_for_status(agent, lambda s: bool(s.issues))
    assert status.issues == [issue_type(model_path="someone/model/m.gguf@main")]
    await endpoint.set_state(agent, desired_state())
    await endpoint.wait_for_status(agent, is_serving)
    await asyncio.sleep(0)
