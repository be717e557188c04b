"""The cluster screen driven by Pilot against the fake balancer."""

from __future__ import annotations

from textual.widgets import Checkbox, DataTable, Input, TabbedContent, TextArea

from paddler_tui.models import default_model_path
from paddler_tui.protocol.agent_socket import ExtraBuffers
from paddler_tui.protocol.model_source import HuggingFace, LocalToAgent, NoModel
from paddler_tui.ui.screens.cluster import ClusterScreen
from paddler_tui.ui.widgets.agents_repack_note import AgentsRepackNote
from paddler_tui.ui.widgets.cluster_agents_progress import ClusterAgentsProgress
from paddler_tui.ui.widgets.cluster_chat_template import ClusterChatTemplate
from paddler_tui.ui.widgets.cluster_model_source import ClusterModelSource
from paddler_tui.ui.widgets.cluster_parameters_form import ClusterParametersForm
from paddler_tui.ui.widgets.cluster_status import ClusterStatus
from tests.support.fake_balancer import FakeBalancer, FakeScript, agent_snapshot, desired_state
from tests.support.pilot import wait_until
from tests.ui.screen_host import ScreenHost, screen_text

TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
METADATA = {"general.name": "SmolLM2", "tokenizer.chat_template": TEMPLATE}


def host(fake: FakeBalancer) -> ScreenHost:
    return ScreenHost(
        lambda services: ClusterScreen(services, retry_s=0.1),
        inference_addr=fake.inference_addr,
        management_addr=fake.management_addr,
    )


def screen(app: ScreenHost) -> ClusterScreen:
    assert isinstance(app.screen, ClusterScreen)
    return app.screen


def status_text(app: ScreenHost) -> str:
    return str(screen(app).query_one(ClusterStatus).render())


async def test_edit_and_apply_puts_the_state_and_follows_the_agents() -> None:
    script = FakeScript(desired_state=desired_state(temperature=0.5), metadata={"a1": METADATA})
    with FakeBalancer(script) as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: screen(app).loaded is not None)
            form = screen(app).query_one(ClusterParametersForm)
            assert form.values()["temperature"] == "0.5"
            model = screen(app).query_one("#model", ClusterModelSource).query_one(Input)
            model.value = "https://huggingface.co/o/r/resolve/main/m.gguf"
            form.set_value("top_k", "12")
            template = screen(app).query_one(ClusterChatTemplate)
            template.set_override(True, TEMPLATE)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: len(fake.put_states) == 1)
            state = fake.put_states[0]
            assert state.model == HuggingFace(filename="m.gguf", repo_id="o/r", revision="main")
            assert state.multimodal_projection == NoModel()
            assert state.inference_parameters.top_k == 12
            assert state.inference_parameters.temperature == 0.5
            assert state.use_chat_template_override
            assert state.chat_template_override is not None
            assert state.chat_template_override.content == TEMPLATE
            # A reload shows in the agents' statuses, then both are applied.
            fake.set_agents(
                [
                    agent_snapshot("a1", "alpha", state_application_status="Fresh", slots_total=0),
                    agent_snapshot("a2", "beta", state_application_status="Fresh", slots_total=0),
                ]
            )
            await wait_until(pilot, lambda: "applying" in status_text(app))
            fake.set_agents([agent_snapshot("a1", "alpha"), agent_snapshot("a2", "beta")])
            await wait_until(pilot, lambda: "applied by all 2 agents" in status_text(app))


async def test_wrong_fields_are_shown_and_nothing_is_sent() -> None:
    with FakeBalancer() as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: screen(app).loaded is not None)
            form = screen(app).query_one(ClusterParametersForm)
            form.set_value("context_size", "big")
            form.set_value("embedding_batch_size", "0")
            screen(app).query_one("#mmproj", ClusterModelSource).query_one(Input).value = "nope"
            await pilot.pause()
            assert "expected default" in screen_text(app)
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "Not applied, fix 3" in status_text(app)
            assert "expected a whole number" in screen_text(app)
            assert "must be greater than zero" in screen_text(app)
            form.set_value("context_size", "2048")
            form.set_value("embedding_batch_size", "64")
            screen(app).query_one("#mmproj", ClusterModelSource).query_one(Input).value = ""
            screen(app).query_one(ClusterChatTemplate).set_override(True, "  ")
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "override is empty" in status_text(app)
            assert fake.put_states == []


async def test_enable_embeddings_requested_before_the_state_loaded() -> None:
    with FakeBalancer() as fake:
        app = host(fake)
        async with app.run_test(size=(100, 30)) as pilot:
            await screen(app).run_action("enable_embeddings")
            await wait_until(pilot, lambda: screen(app).loaded is not None)
            await pilot.pause()
            form = screen(app).query_one(ClusterParametersForm)
            assert form.values()["enable_embeddings"] is True
            assert isinstance(app.focused, Checkbox)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: len(fake.put_states) == 1)
            assert fake.put_states[0].inference_parameters.enable_embeddings


async def test_the_model_template_and_metadata_come_from_an_agent() -> None:
    model = LocalToAgent(value=str(default_model_path()))
    script = FakeScript(desired_state=desired_state(model), metadata={"a1": METADATA})
    with FakeBalancer(script) as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: screen(app).loaded is not None)
            model_input = screen(app).query_one("#model", ClusterModelSource).query_one(Input)
            assert model_input.value == "default"
            area = screen(app).query_one("#model-template", TextArea)
            await wait_until(pilot, lambda: area.text == TEMPLATE)
            assert "from alpha" in str(area.border_title)
            screen(app).query_one(TabbedContent).active = "tab-metadata"
            table = screen(app).query_one("#metadata").query_one(DataTable)
            await wait_until(pilot, lambda: table.row_count == 2)
            # beta's model has no metadata to show.
            fake.set_agents([agent_snapshot("a2", "beta")])
            await wait_until(pilot, lambda: "no model loaded" in screen_text(app))
            await wait_until(pilot, lambda: "has no chat template" in str(area.border_title))


async def test_an_unreachable_balancer_is_said_plainly() -> None:
    app = ScreenHost(ClusterScreen, inference_addr="127.0.0.1:9", management_addr="127.0.0.1:9")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: "Cannot load" in status_text(app))
        await pilot.press("ctrl+r")
        await pilot.pause()


def repack_cells(app: ScreenHost) -> dict[str, str]:
    table = screen(app).query_one(ClusterAgentsProgress)
    return {key.value or "": str(table.get_cell(key, "repack")) for key in table.rows}


def repack_note(app: ScreenHost) -> str:
    note = screen(app).query_one(AgentsRepackNote)
    return str(note.render()) if note.display else ""


async def test_extra_buffers_verdicts_come_from_the_monitor_socket() -> None:
    crashed = ExtraBuffers(enabled=False, reason="auto: the probe killed by SIGSEGV")
    script = FakeScript(live_monitor=True, extra_buffers={"a1": crashed})
    with FakeBalancer(script) as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: repack_cells(app) == {"a1": "off", "a2": "—"})
            assert repack_note(app) == "alpha: repack off — auto: the probe killed by SIGSEGV"
            fake.set_extra_buffers("a2", ExtraBuffers(enabled=True, reason="on: asked for"))
            await wait_until(pilot, lambda: repack_cells(app) == {"a1": "off", "a2": "on"})
            assert "beta: repack on — on: asked for" in repack_note(app)
            # The agents stream still decides who is there.
            fake.set_agents([agent_snapshot("a2", "beta")])
            await wait_until(pilot, lambda: repack_cells(app) == {"a2": "on"})
            assert repack_note(app) == "beta: repack on — on: asked for"


async def test_against_paddler_the_verdicts_are_unknown() -> None:
    with FakeBalancer() as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: len(repack_cells(app)) == 2)
            await pilot.pause(0.3)
            assert repack_cells(app) == {"a1": "—", "a2": "—"}
            assert repack_note(app) == ""
