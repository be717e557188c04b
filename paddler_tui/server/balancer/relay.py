"""One request's life in the balancer, as a state machine that does no I/O (sans-I/O).

The asyncio shells feed a :class:`RequestRelay` what happened and carry out the actions it
returns: ``request_forwarder.py`` waits for the slot, sends to the agent, reads the agent's items
and times them; the entry points in ``web/`` write what is delivered to the client. Nothing here
imports asyncio or the web stack, so every state and event is tested without a loop or a socket.

::

    BUFFERED --slot_granted--> DISPATCHED --request_sent--> STREAMING --terminal--> FINISHED
      | overflow --> REFUSED      | send_failed --> AGENT_LOST  | agent_lost --> AGENT_LOST
      | buffer timeout --> TIMED_OUT                            | shut_down --> SHUT_DOWN
      | shut_down --> SHUT_DOWN                                 | client_gone, item_timed_out
      | client_gone --> CLIENT_GONE                             v
                                 DRAINING: the agent is told to stop, the slot is held until
                                 a terminal response, an item timeout, agent loss or shutdown;
                                 then CLIENT_GONE or TIMED_OUT, whichever began the drain.

Every ending releases a held slot exactly once, records exactly one finish for the monitor and
ends the client's stream with exactly one message (none for a client that left). An event that
means nothing in the current state (a late token, a second client_gone) returns no actions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from paddler_tui.protocol.agent_socket import FromAgentResponse, RelayedToken, ToAgentRequest
from paddler_tui.protocol.embedding import is_terminal as embedding_is_terminal
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    EmbeddingResponse,
    ErrorEnvelope,
    GeneratedToken,
)
from paddler_tui.protocol.generated_token import Done
from paddler_tui.protocol.generated_token import is_terminal as token_is_terminal
from paddler_tui.protocol.inference_socket import RelayedResponse, ResponseEnvelope, ResponseHead
from paddler_tui.protocol.monitor import MonitorEventKind, RequestKind, RequestPhase
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.request_errors import (
    AGENT_GONE,
    BUFFER_TIMEOUT,
    OVERFLOW,
    SEND_FAILED,
    SHUTTING_DOWN,
    RequestError,
    error_envelope,
    item_timeout_error,
)


class RelayState(enum.Enum):
    BUFFERED = "buffered"  # waiting for a slot
    DISPATCHED = "dispatched"  # a slot is held; the request is being sent
    STREAMING = "streaming"  # the agent's items go to the client
    DRAINING = "draining"  # the client's stream ended; the slot waits for the agent to stop
    # Endings.
    FINISHED = "finished"  # the agent's terminal response went to the client
    REFUSED = "refused"  # the buffer was full
    TIMED_OUT = "timed_out"  # no slot in time, or no item in time (then drained)
    AGENT_LOST = "agent_lost"  # the agent's socket closed, or sending to it failed
    SHUT_DOWN = "shut_down"  # the balancer is shutting down
    CLIENT_GONE = "client_gone"  # the client left (then drained, if it had a slot)


RELAYING = frozenset({RelayState.DISPATCHED, RelayState.STREAMING})
HOLDING_SLOT = frozenset({RelayState.DISPATCHED, RelayState.STREAMING, RelayState.DRAINING})


# Actions. A tuple of them answers each event; a delivery to the client always comes last.


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Send the request to the agent, then feed ``request_sent`` or ``send_failed``."""

    request: ToAgentRequest


@dataclass(frozen=True, slots=True)
class SendStop:
    """Tell the agent to stop; if that fails, the drain still ends at the next item timeout."""


@dataclass(frozen=True, slots=True)
class ReleaseSlot:
    """Give the slot back and close the request's channel from the agent."""


@dataclass(frozen=True, slots=True)
class RecordPhase:
    """The monitor's request moves to ``phase`` (the buffered phase is where every relay starts)."""

    phase: RequestPhase


@dataclass(frozen=True, slots=True)
class RecordItem:
    """The monitor counts one more item relayed to the client."""


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """An event for the monitor's feed, while the request goes on (draining)."""

    kind: MonitorEventKind
    text: str


@dataclass(frozen=True, slots=True)
class RecordFinish:
    """The monitor forgets the request, leaving an event in its feed unless ``kind`` is None."""

    kind: MonitorEventKind | None
    text: str = ""
    usage: TokenUsage | None = None


@dataclass(frozen=True, slots=True)
class Deliver:
    """Deliver a response to the client; a terminal one ends the client's stream."""

    message: ResponseEnvelope


@dataclass(frozen=True, slots=True)
class EndStream:
    """End the client's stream with this error."""

    message: ErrorEnvelope


Action = (
    SendRequest
    | SendStop
    | ReleaseSlot
    | RecordPhase
    | RecordItem
    | RecordEvent
    | RecordFinish
    | Deliver
    | EndStream
)
Actions = tuple[Action, ...]

NOTHING: Actions = ()
SEND_STOP = SendStop()
RELEASE_SLOT = ReleaseSlot()
RECORD_ITEM = RecordItem()
RECORD_RUNNING = RecordPhase("running")
RECORD_DRAINING = RecordPhase("draining")
SILENT_FINISH = RecordFinish(None)
CLIENT_LEFT_BUFFERED = "the client left while buffered"
CLIENT_LEFT_STREAMING = "the client left; stopping the agent"


def request_kind(request: ToAgentRequest) -> RequestKind:
    if isinstance(request, ContinueFromConversationHistory):
        return "conversation"
    if isinstance(request, ContinueFromRawPrompt):
        return "raw_prompt"
    return "embedding"


def is_terminal_response(response: FromAgentResponse) -> bool:
    """Whether the agent says no more: a final token or embedding result, or any other answer."""
    if isinstance(response, GeneratedToken):
        return token_is_terminal(response.value)
    if isinstance(response, EmbeddingResponse):
        return embedding_is_terminal(response.value)
    return True


def usage_of(response: GeneratedToken | EmbeddingResponse) -> TokenUsage | None:
    if isinstance(response, GeneratedToken) and isinstance(response.value, Done):
        return response.value.usage
    return None


def describe_result(response: GeneratedToken | EmbeddingResponse) -> str:
    """A line for the event feed: "Done", or the failure's variant and text."""
    result = response.value
    value = getattr(result, "value", None)
    return f"{result.TAG}: {value}" if isinstance(value, str) else result.TAG


class RequestRelay:
    """The state of one request between the client and an agent.

    Feed it events (its methods); each returns the actions to carry out, in order. Relayed tokens,
    the bulk of the traffic, take :meth:`relayed_token`, which answers with the client's message
    itself and allocates nothing more.
    """

    __slots__ = (
        "_drain_ending",
        "head",
        "item_timeout_ms",
        "kind",
        "relaying",
        "request",
        "request_id",
        "state",
    )

    # Set with the slot: who answers, for every response envelope of this request.
    head: ResponseHead

    def __init__(self, request_id: str, request: ToAgentRequest, *, item_timeout_ms: int) -> None:
        self.request_id = request_id
        self.request = request
        self.kind = request_kind(request)
        self.item_timeout_ms = item_timeout_ms
        self.state = RelayState.BUFFERED
        # DISPATCHED or STREAMING: the client's stream is open and the agent's items go to it.
        # A plain attribute, since the shells check it on every token.
        self.relaying = False
        self._drain_ending = RelayState.CLIENT_GONE

    @property
    def holds_slot(self) -> bool:
        return self.state in HOLDING_SLOT

    @property
    def ended(self) -> bool:
        return self.state not in HOLDING_SLOT and self.state is not RelayState.BUFFERED

    def _enter(self, state: RelayState) -> None:
        self.state = state
        self.relaying = state in RELAYING

    # While buffered.

    def slot_granted(self, agent_name: str | None) -> Actions:
        if self.state is not RelayState.BUFFERED:
            return NOTHING
        self.head = ResponseHead(agent_name, self.request_id)
        self._enter(RelayState.DISPATCHED)
        return (RECORD_RUNNING, SendRequest(self.request))

    def buffer_overflow(self) -> Actions:
        return self._refuse(RelayState.REFUSED, "buffer_overflow", OVERFLOW)

    def buffer_timed_out(self) -> Actions:
        return self._refuse(RelayState.TIMED_OUT, "buffer_timeout", BUFFER_TIMEOUT)

    def _refuse(self, state: RelayState, kind: MonitorEventKind, error: RequestError) -> Actions:
        if self.state is not RelayState.BUFFERED:
            return NOTHING
        self._enter(state)
        return (RecordFinish(kind, error[1]), EndStream(error_envelope(self.request_id, error)))

    # Sending.

    def request_sent(self) -> Actions:
        if self.state is RelayState.DISPATCHED:
            self._enter(RelayState.STREAMING)
        return NOTHING

    def send_failed(self) -> Actions:
        if self.state is not RelayState.DISPATCHED:
            return NOTHING
        return self._fail(RelayState.AGENT_LOST, "agent_lost", SEND_FAILED)

    # The agent's items. An agent that answers before ``request_sent`` got the request: its items
    # are relayed in DISPATCHED too.

    def relayed_token(self, token: RelayedToken) -> RelayedResponse | None:
        """The client's message for a token (count it, deliver it); None to drop it (draining)."""
        if self.relaying:
            return RelayedResponse(self.head, token)
        return None

    def response(self, response: FromAgentResponse) -> Actions:
        if self.relaying:
            if not isinstance(response, GeneratedToken | EmbeddingResponse):
                return NOTHING  # an answer of another kind (metadata) is not part of this stream
            envelope = ResponseEnvelope(
                generated_by=self.head.generated_by, request_id=self.request_id, response=response
            )
            if not is_terminal_response(response):
                return (RECORD_ITEM, Deliver(envelope))
            self._enter(RelayState.FINISHED)
            finish = RecordFinish(
                "request_completed", describe_result(response), usage_of(response)
            )
            return (finish, RELEASE_SLOT, Deliver(envelope))
        if self.state is RelayState.DRAINING and is_terminal_response(response):
            return self._drained()
        return NOTHING

    def item_timed_out(self) -> Actions:
        """A whole item timeout passed without an item from the agent."""
        if self.relaying:
            self._drain_ending = RelayState.TIMED_OUT
            self._enter(RelayState.DRAINING)
            error = item_timeout_error(self.item_timeout_ms)
            return (
                RecordEvent("item_timeout", error[1]),
                RECORD_DRAINING,
                SEND_STOP,
                EndStream(error_envelope(self.request_id, error)),
            )
        if self.state is RelayState.DRAINING:
            return self._drained()
        return NOTHING

    def agent_lost(self) -> Actions:
        if self.relaying:
            return self._fail(RelayState.AGENT_LOST, "agent_lost", AGENT_GONE)
        if self.state is RelayState.DRAINING:
            return self._drained()
        return NOTHING

    # Either side.

    def client_gone(self) -> Actions:
        """The client left (closed its stream, disconnected, cancelled the request)."""
        if self.state is RelayState.BUFFERED:
            self._enter(RelayState.CLIENT_GONE)
            return (RecordFinish("client_cancelled", CLIENT_LEFT_BUFFERED),)
        if self.relaying:
            self._drain_ending = RelayState.CLIENT_GONE
            self._enter(RelayState.DRAINING)
            return (
                RecordEvent("client_cancelled", CLIENT_LEFT_STREAMING),
                RECORD_DRAINING,
                SEND_STOP,
            )
        return NOTHING

    def shut_down(self) -> Actions:
        """The balancer is shutting down: a waiting or streaming request ends, a drain is cut."""
        if self.state is RelayState.BUFFERED:
            return self._refuse(RelayState.SHUT_DOWN, "shutting_down", SHUTTING_DOWN)
        if self.relaying:
            return self._fail(RelayState.SHUT_DOWN, "shutting_down", SHUTTING_DOWN)
        if self.state is RelayState.DRAINING:
            return self._drained()
        return NOTHING

    # Endings with a slot.

    def _fail(self, state: RelayState, kind: MonitorEventKind, error: RequestError) -> Actions:
        self._enter(state)
        return (
            RecordFinish(kind, error[1]),
            RELEASE_SLOT,
            EndStream(error_envelope(self.request_id, error)),
        )

    def _drained(self) -> Actions:
        # The client heard why when the drain began; the feed already has that event.
        self._enter(self._drain_ending)
        return (RELEASE_SLOT, SILENT_FINISH)
