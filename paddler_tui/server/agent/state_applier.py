"""Applying the balancer's desired state: resolve the model, drain, load, report issues.

Paddler drains and reloads on every ``SetState``, even an identical one (and every reconnect
sends one). Here a state is compared with what is loaded: sampling-only changes are applied in
place, an identical state does nothing, and only a change to the model or the context reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Literal

from paddler_tui.protocol.agent_issue import (
    ChatTemplateDoesNotCompile,
    ModelCannotBeLoaded,
    ModelPath,
    SlotCannotStart,
    UnableToFindChatTemplate,
)
from paddler_tui.protocol.agent_socket import ExtraBuffers
from paddler_tui.protocol.desired_state import AgentDesiredState
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.model_source import NoModel
from paddler_tui.server.agent.chat_template import ChatTemplate, ChatTemplateCompileError
from paddler_tui.server.agent.engine.extra_buffers import (
    ExtraBuffersMode,
    ProbeRunner,
    VerdictCache,
    decide_extra_buffers,
    run_probe,
)
from paddler_tui.server.agent.engine.types import (
    DEFAULT_PROMPT_CACHE_RAM_MIB,
    EngineLoadError,
    EngineSettings,
    prompt_cache_bytes,
)
from paddler_tui.server.agent.models.resolution import ModelResolutionError, resolve_model
from paddler_tui.server.agent.running_requests import RunningRequests
from paddler_tui.server.agent.status import AgentStatus

logger = logging.getLogger(__name__)

RETRY_INTERVAL_S = 1.0

# Issues that belong to one stage of applying a state; a stage that succeeds clears its own.
_LOAD_ISSUES = (ModelCannotBeLoaded, SlotCannotStart)
_TEMPLATE_ISSUES = (ChatTemplateDoesNotCompile, UnableToFindChatTemplate)


def engine_settings(
    model_path: str,
    parameters: InferenceParameters,
    *,
    slots: int,
    threads: int | None,
    prompt_cache_ram: int,
) -> EngineSettings:
    return EngineSettings(
        model_path=model_path,
        slots=slots,
        context_size=parameters.context_size,
        n_batch=parameters.n_batch,
        n_threads=threads,
        n_gpu_layers=parameters.n_gpu_layers,
        k_cache_dtype=parameters.k_cache_dtype,
        v_cache_dtype=parameters.v_cache_dtype,
        enable_embeddings=parameters.enable_embeddings,
        pooling_type=parameters.pooling_type,
        prompt_cache_ram=prompt_cache_ram,
    )


_Outcome = Literal["applied", "retry", "unappliable", "superseded"]


@dataclass(frozen=True)
class _Attempt:
    desired: AgentDesiredState
    model_path: str | None


class StateApplier:
    """Owns the reconciliation loop of one agent; :meth:`run` until cancelled."""

    def __init__(
        self,
        *,
        status: AgentStatus,
        requests: RunningRequests,
        slots: int,
        threads: int | None,
        extra_buffers: ExtraBuffersMode = "auto",
        prompt_cache_ram: int = prompt_cache_bytes(DEFAULT_PROMPT_CACHE_RAM_MIB),
        verdicts: VerdictCache | None = None,
        probe: ProbeRunner = run_probe,
    ) -> None:
        self._status = status
        self._requests = requests
        self._slots = slots
        self._threads = threads
        self._extra_buffers = extra_buffers
        # Bytes; the cache belongs to each engine loaded, so a reload starts it empty.
        self._prompt_cache_ram = prompt_cache_ram
        self._verdicts = verdicts if verdicts is not None else VerdictCache.default()
        self._probe = probe
        self._desired: AgentDesiredState | None = None
        self._applied: _Attempt | None = None
        self._unappliable: AgentDesiredState | None = None
        self._resolving: asyncio.Task[str | None] | None = None
        self._wake = asyncio.Event()
        self._failures = 0

    def set_desired(self, desired: AgentDesiredState) -> None:
        if desired != self._desired:
            self._desired = desired
            self._failures = 0
            if self._resolving is not None:
                # A download for a state nobody wants any more is abandoned (its partial file
                # stays for a later resume).
                self._resolving.cancel()
        self._wake.set()

    def _pending(self) -> AgentDesiredState | None:
        desired = self._desired
        if desired is None or desired == self._unappliable:
            return None
        if self._applied is not None and self._applied.desired == desired:
            return None
        return desired

    async def run(self) -> None:
        while True:
            desired = self._pending()
            if desired is None:
                await self._wake.wait()
                self._wake.clear()
                continue
            self._wake.clear()
            outcome = await self._attempt(desired)
            if outcome == "retry":
                self._failures += 1
                self._status.update(
                    state_application_status=(
                        "AttemptedAndRetrying" if self._failures < 3 else "Stuck"
                    )
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_INTERVAL_S)
            elif outcome == "unappliable":
                # Retrying cannot help (a template that does not compile); a new state will.
                self._unappliable = desired
                self._status.update(state_application_status="AttemptedAndNotAppliable")

    async def _attempt(self, desired: AgentDesiredState) -> _Outcome:
        if self._applied is None or self._applied.desired.model != desired.model:
            self._status.update(state_application_status="Fresh")
        self._resolving = asyncio.create_task(
            resolve_model(desired.model, on_progress=self._on_progress)
        )
        try:
            model_path = await self._resolving
        except asyncio.CancelledError:
            this_task = asyncio.current_task()
            if this_task is not None and this_task.cancelling():
                raise  # shutdown, not a newer state
            return "superseded"
        except ModelResolutionError as error:
            self._status.add_issue(error.issue)
            logger.warning("cannot resolve the model: %s", error.issue)
            return "retry"
        finally:
            self._resolving = None
            self._status.update(**_download_reset())
        # Resolution worked, so every resolution issue (download, cache, missing file) is fixed.
        self._status.update(
            issues=frozenset(
                issue
                for issue in self._status.issues
                if isinstance(issue, _LOAD_ISSUES + _TEMPLATE_ISSUES)
            )
        )
        attempt = _Attempt(desired, model_path)
        if self._needs_reload(attempt):
            return await self._reload(attempt)
        return await self._apply(attempt, loaded_now=False)

    def _on_progress(self, current: int, total: int | None, filename: str) -> None:
        self._status.update(
            download_current=current,
            download_total=total or 0,
            download_indeterminate=total is None,
            download_filename=filename,
        )

    def _needs_reload(self, attempt: _Attempt) -> bool:
        loaded = self._requests.loaded
        if loaded is None or self._applied is None:
            return True
        current = self._applied
        wanted = engine_settings(
            attempt.model_path or "",
            attempt.desired.inference_parameters,
            slots=self._slots,
            threads=self._threads,
            prompt_cache_ram=self._prompt_cache_ram,
        )
        # The extra-buffers verdict depends only on the model, decided again on a reload.
        wanted = replace(wanted, use_extra_buffers=loaded.engine_settings.use_extra_buffers)
        return current.model_path != attempt.model_path or wanted != loaded.engine_settings

    async def _apply(self, attempt: _Attempt, *, loaded_now: bool) -> _Outcome:
        """Compile the template and make the state current on the loaded model."""
        try:
            template = self._compile_template(attempt)
        except ChatTemplateCompileError:
            if loaded_now:
                # Paddler fails the load on a template that does not compile.
                await self._requests.drain_and_unload()
            return "unappliable"
        uses_override = attempt.desired.chat_template_override is not None
        self._requests.update_in_place(
            parameters=attempt.desired.inference_parameters,
            chat_template=template,
            uses_override=uses_override,
        )
        self._applied = attempt
        self._status.update(
            model_path=attempt.model_path,
            uses_chat_template_override=uses_override,
            slots_total=self._slots,
            state_application_status="Applied",
        )
        return "applied"

    async def _reload(self, attempt: _Attempt) -> _Outcome:
        # Stop taking requests (slots_total 0 stops the balancer's dispatch), then drain.
        self._status.update(slots_total=0)
        await self._requests.drain_and_unload()
        self._status.update(model_path=None, uses_chat_template_override=False)
        self._applied = None
        if attempt.model_path is None or isinstance(attempt.desired.model, NoModel):
            self._status.update(
                issues=frozenset(), state_application_status="Applied", slots_total=0
            )
            self._applied = attempt
            return "applied"
        verdict = await decide_extra_buffers(
            self._extra_buffers,
            attempt.model_path,
            threads=self._threads,
            cache=self._verdicts,
            probe=self._probe,
        )
        logger.info("extra buffers %s: %s", "on" if verdict.enabled else "off", verdict.reason)
        self._status.update(
            extra_buffers=ExtraBuffers(enabled=verdict.enabled, reason=verdict.reason)
        )
        settings = replace(
            engine_settings(
                attempt.model_path,
                attempt.desired.inference_parameters,
                slots=self._slots,
                threads=self._threads,
                prompt_cache_ram=self._prompt_cache_ram,
            ),
            use_extra_buffers=verdict.enabled,
        )
        try:
            await self._requests.load(settings)
        except EngineLoadError as error:
            logger.warning("cannot load %s: %s", attempt.model_path, error)
            if error.kind == "slot_cannot_start":
                for index in range(self._slots):
                    self._status.add_issue(SlotCannotStart(error=str(error), slot_index=index))
            else:
                self._status.add_issue(ModelCannotBeLoaded(model_path=attempt.model_path))
            return "retry"
        self._status.remove_issues(*_LOAD_ISSUES)
        return await self._apply(attempt, loaded_now=True)

    def _compile_template(self, attempt: _Attempt) -> ChatTemplate | None:
        """The compiled template, or ``None`` when there is none to use.

        A template that does not compile is reported as an issue, then re-raised.
        """
        loaded = self._requests.loaded
        assert loaded is not None
        model_path = attempt.model_path or ""
        override = attempt.desired.chat_template_override
        source = override.content if override is not None else loaded.builtin_chat_template
        self._status.remove_issues(*_TEMPLATE_ISSUES)
        if source is None:
            # Embedding models often have no template and need none (Paddler issue #250).
            if not attempt.desired.inference_parameters.enable_embeddings:
                self._status.add_issue(UnableToFindChatTemplate(model_path=model_path))
            return None
        try:
            return ChatTemplate.compile(source)
        except ChatTemplateCompileError as error:
            self._status.add_issue(
                ChatTemplateDoesNotCompile(
                    error=str(error),
                    model_path=ModelPath(model_path=model_path),
                    template_content=source,
                )
            )
            raise


def _download_reset() -> dict[str, object]:
    return {
        "download_current": 0,
        "download_total": 0,
        "download_filename": None,
        "download_indeterminate": True,
    }
