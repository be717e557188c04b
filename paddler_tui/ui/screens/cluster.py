"""The cluster settings: edit the desired state, apply it, watch the agents apply it.

Everything goes through the management API Paddler has too (desired state GET/PUT, the agents
stream, each agent's model metadata), so this screen works against Paddler unchanged. Only the
agents' extra-buffers verdicts and ``serve``'s supervision of its local agents (restarts, last
exit) come from the monitor socket, where the balancer has one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Select, TabbedContent, TabPane

from paddler_tui.client.apply_tracker import ApplyTracker
from paddler_tui.client.async_iteration import closing
from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.errors import ClientError, HttpStatusError
from paddler_tui.client.monitoring.extras import (
    MonitorExtras,
    follow_monitor_extras,
    with_extra_buffers,
)
from paddler_tui.client.monitoring.feed import RETRY_S
from paddler_tui.client.monitoring.sse_fallback import monitor_agent
from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.protocol.desired_state import BalancerDesiredState, ChatTemplate
from paddler_tui.protocol.model_source import AgentDesiredModel
from paddler_tui.ui.extra_buffers import repack_notes
from paddler_tui.ui.model_source_text import ModelSourceError
from paddler_tui.ui.monitor_view import agent_row, local_agent_row
from paddler_tui.ui.parameter_form import parse_parameters
from paddler_tui.ui.supervision import by_name, supervision_notes, unregistered
from paddler_tui.ui.widgets.agents_repack_note import AgentsRepackNote
from paddler_tui.ui.widgets.agents_supervision_note import AgentsSupervisionNote
from paddler_tui.ui.widgets.cluster_agents_progress import ClusterAgentsProgress
from paddler_tui.ui.widgets.cluster_chat_template import ClusterChatTemplate
from paddler_tui.ui.widgets.cluster_metadata import ClusterMetadata
from paddler_tui.ui.widgets.cluster_model_source import ClusterModelSource
from paddler_tui.ui.widgets.cluster_parameters_form import ClusterParametersForm
from paddler_tui.ui.widgets.cluster_status import ClusterStatus

CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
PROGRESS_TICK_S = 0.5


class ClusterScreen(Screen[None]):
    """The desired state of the whole cluster.

    | Key | Action | Binding id |
    | --- | --- | --- |
    | ctrl+s | apply (PUT) the edited state | ``cluster.apply`` |
    | ctrl+r | reload the state from the balancer, dropping edits | ``cluster.reload`` |
    """

    DEFAULT_CSS: ClassVar[str] = """
    ClusterScreen {
        layout: vertical;
        #tabs { height: 1fr; }
        #model-pane { padding: 0 1; }
        TabPane { padding: 0; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "apply", "Apply", id="cluster.apply"),
        Binding("ctrl+r", "reload", "Reload", id="cluster.reload"),
    ]

    def __init__(
        self,
        services: BalancerServices,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_S,
    ) -> None:
        super().__init__()
        self.services = services
        self._clock = clock
        self._retry_s = retry_s
        self.loaded: BalancerDesiredState | None = None
        self.agents = AgentControllerPoolSnapshot(agents=[])
        self.extras = MonitorExtras({})
        self.tracker: ApplyTracker | None = None
        self._enable_embeddings_when_loaded = False
        self._template_agent: str | None = None

    def compose(self) -> ComposeResult:
        yield ClusterStatus("Loading the desired state…", id="status")
        # Disabled until the balancer's state fills it: empty editors would look like a state.
        with TabbedContent(id="tabs", disabled=True):
            with TabPane("Model & parameters", id="tab-model"), VerticalScroll(id="model-pane"):
                yield ClusterModelSource(
                    "Model",
                    placeholder="default · /abs/model.gguf · https://… · huggingface.co URL",
                    id="model",
                )
                yield ClusterModelSource(
                    "Multimodal projection (optional)",
                    placeholder="empty for none",
                    id="mmproj",
                )
                yield ClusterParametersForm(id="parameters")
            with TabPane("Chat template", id="tab-template"):
                yield ClusterChatTemplate(id="template")
            with TabPane("Model metadata", id="tab-metadata"):
                yield ClusterMetadata(id="metadata")
        yield ClusterAgentsProgress(id="agents")
        yield AgentsSupervisionNote(id="supervision")
        yield AgentsRepackNote(id="repack")
        yield Footer()

    def on_mount(self) -> None:
        # After the first refresh every child is mounted and running, so none is handed data
        # before its own mount handler (a table would miss its first re-measure).
        self.call_after_refresh(self._start)

    def _start(self) -> None:
        self._load_state()
        self._follow_agents()
        self._follow_extras()
        self.set_interval(PROGRESS_TICK_S, self._tick)

    def _tick(self) -> None:
        # An agent that applies a change in place shows no change to wait for, only time passing.
        if self.tracker is not None:
            self._show_agents()

    # Actions.

    def action_reload(self) -> None:
        self._load_state()

    def action_apply(self) -> None:
        state = self._edited_state()
        if state is not None:
            self._put_state(state)

    def action_enable_embeddings(self) -> None:
        """Turn enable_embeddings on in the form (applied with ctrl+s like any edit)."""
        if self.loaded is None:
            self._enable_embeddings_when_loaded = True
            return
        form = self.query_one(ClusterParametersForm)
        form.set_value("enable_embeddings", True)
        self.query_one(TabbedContent).active = "tab-model"
        form.editor("enable_embeddings").focus()
        self.notify("enable_embeddings is on: press ctrl+s to apply it")

    # Editing.

    def _fill(self, state: BalancerDesiredState) -> None:
        self.query_one("#model", ClusterModelSource).set_model(state.model)
        self.query_one("#mmproj", ClusterModelSource).set_model(state.multimodal_projection)
        self.query_one(ClusterParametersForm).set_parameters(state.inference_parameters)
        template = state.chat_template_override
        self.query_one(ClusterChatTemplate).set_override(
            state.use_chat_template_override, template.content if template else ""
        )

    def _edited_state(self) -> BalancerDesiredState | None:
        """The state the form describes, or ``None`` after showing what is wrong."""
        status = self.query_one(ClusterStatus)
        problems: list[str] = []
        models: dict[str, AgentDesiredModel] = {}
        for key in ("model", "mmproj"):
            try:
                models[key] = self.query_one(f"#{key}", ClusterModelSource).model()
            except ModelSourceError as error:
                problems.append(f"{key}: {error}")
        form = self.query_one(ClusterParametersForm)
        parsed = parse_parameters(form.values())
        form.show_errors(parsed.errors)
        problems.extend(f"{name}: {error}" for name, error in parsed.errors.items())
        if problems or parsed.parameters is None:
            status.say(f"Not applied, fix {len(problems)}: " + "; ".join(problems), "error")
            # Focus scrolls the first wrong field into view.
            wrong_model = next((key for key in ("model", "mmproj") if key not in models), None)
            if wrong_model is not None:
                self.query_one(f"#{wrong_model}", ClusterModelSource).focus_editor()
            else:
                form.editor(next(iter(parsed.errors))).focus()
            return None
        use_override, content = self.query_one(ClusterChatTemplate).override()
        if use_override and not content.strip():
            status.say("Not applied: the chat template override is empty", "error")
            return None
        return BalancerDesiredState(
            chat_template_override=ChatTemplate(content=content) if content.strip() else None,
            inference_parameters=parsed.parameters,
            model=models["model"],
            multimodal_projection=models["mmproj"],
            use_chat_template_override=use_override,
        )

    # Balancer work.

    @work(exclusive=True, group="cluster-load")
    async def _load_state(self) -> None:
        status = self.query_one(ClusterStatus)
        try:
            state = await self.services.management.desired_state()
        except ClientError as error:
            status.say(f"Cannot load the desired state: {error} (ctrl+r retries)", "error")
            return
        self.loaded = state
        self._fill(state)
        self.query_one(TabbedContent).disabled = False
        if self.focused is None:
            self.query_one("#model", ClusterModelSource).focus_editor()
        status.say("Desired state loaded from the balancer; ctrl+s applies your edits")
        if self._enable_embeddings_when_loaded:
            self._enable_embeddings_when_loaded = False
            self.action_enable_embeddings()

    @work(exclusive=True, group="cluster-apply")
    async def _put_state(self, state: BalancerDesiredState) -> None:
        status = self.query_one(ClusterStatus)
        status.say("Applying…", "busy")
        try:
            await self.services.management.put_desired_state(state)
        except HttpStatusError as error:
            status.say(f"The balancer refused it ({error.status_code}): {error.text}", "error")
            return
        except ClientError as error:
            status.say(f"Cannot apply: {error}", "error")
            return
        self.loaded = state
        self.tracker = ApplyTracker(self._clock())
        self.tracker.observe(self.agents)
        self._show_agents()

    @work(exclusive=True, group="cluster-agents")
    async def _follow_agents(self) -> None:
        while True:
            try:
                stream = self.services.management.agents_stream()
                async with closing(stream):
                    async for snapshot in stream:
                        self._take_agents(snapshot)
            except ClientError:
                pass  # the status line of the load or the PUT says so; keep trying
            await asyncio.sleep(self._retry_s)

    @work(exclusive=True, group="cluster-extras")
    async def _follow_extras(self) -> None:
        services = self.services
        extras = follow_monitor_extras(
            services.management_addr, services.api_key, retry_s=self._retry_s
        )
        async with closing(extras):
            async for current in extras:
                self.extras = current
                self._show_agents()

    def _take_agents(self, snapshot: AgentControllerPoolSnapshot) -> None:
        self.agents = snapshot
        if self.tracker is not None:
            self.tracker.observe(snapshot)
        self._show_agents()
        with_model = [
            (agent.name or agent.id, agent.id) for agent in snapshot.agents if agent.model_path
        ]
        self.query_one(ClusterMetadata).set_agents(with_model)
        ids = [agent_id for _, agent_id in with_model]
        if self._template_agent not in ids:
            self._template_agent = ids[0] if ids else None
            self._load_model_template(self._template_agent)

    def _show_agents(self) -> None:
        tracker, now = self.tracker, self._clock()
        variables = self.app.theme_variables
        styles = {
            "warning": variables.get("warning", "yellow"),
            "error": variables.get("error", "red"),
            "success": variables.get("success", "green"),
        }
        agents = [
            with_extra_buffers(monitor_agent(a), self.extras.extra_buffers)
            for a in self.agents.agents
        ]
        local_agents = self.extras.local_agents
        local = by_name(local_agents)
        down = unregistered(local_agents, (agent.name for agent in agents))
        self.query_one(ClusterAgentsProgress).show(
            [
                (
                    agent_row(agent, local.get(agent.name or "")),
                    tracker.agent_state(snapshot, now) if tracker else None,
                )
                for agent, snapshot in zip(agents, self.agents.agents, strict=True)
            ]
            + [(local_agent_row(agent), None) for agent in down],
            styles,
        )
        self.query_one(AgentsSupervisionNote).show(supervision_notes(local_agents), styles)
        self.query_one(AgentsRepackNote).show(repack_notes(agents), warning=styles["warning"])
        if tracker is None:
            return
        summary = tracker.summary(self.agents, now)
        if tracker.finished(self.agents, now):
            self.tracker = None
            failed = any(
                tracker.agent_state(agent, now) == "failed" for agent in self.agents.agents
            )
            self.query_one(ClusterStatus).say(summary, "error" if failed else "ok")
        else:
            self.query_one(ClusterStatus).say(summary, "busy")

    @work(exclusive=True, group="cluster-template")
    async def _load_model_template(self, agent_id: str | None) -> None:
        area = self.query_one(ClusterChatTemplate)
        if agent_id is None:
            area.set_model_template("", "no agent has a model loaded")
            return
        name = next((a.name or a.id for a in self.agents.agents if a.id == agent_id), agent_id)
        try:
            metadata = await self.services.management.model_metadata(agent_id)
        except ClientError as error:
            area.set_model_template("", f"cannot ask {name}: {error}")
            return
        template = (metadata.metadata if metadata else {}).get(CHAT_TEMPLATE_KEY)
        if template is None:
            area.set_model_template("", f"{name}'s model has no chat template")
        else:
            area.set_model_template(template, f"from {name}")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "metadata-agent":
            event.stop()
            self._load_metadata(self.query_one(ClusterMetadata).agent_id)

    @work(exclusive=True, group="cluster-metadata")
    async def _load_metadata(self, agent_id: str | None) -> None:
        view = self.query_one(ClusterMetadata)
        if agent_id is None:
            view.show(None, "no agent has a model loaded")
            return
        try:
            metadata = await self.services.management.model_metadata(agent_id)
        except ClientError as error:
            view.show(None, f"cannot ask the agent: {error}")
            return
        view.show(metadata.metadata if metadata else None)
