"""What one embedding run has produced so far, and its export.

The screen feeds every :data:`~paddler_tui.client.embeddings.batch.RunEvent` to
:meth:`EmbeddingRun.apply` and renders from here, so the table, the matrix, the timing line and
the JSON export all agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paddler_tui.client.embeddings.batch import (
    ChunkFailed,
    DocumentTooLarge,
    Produced,
    Rejected,
    RunEvent,
    Transport,
    TransportChosen,
)
from paddler_tui.client.embeddings.similarity import cosine_similarity_matrix, vector_norm
from paddler_tui.protocol import codec
from paddler_tui.protocol.embedding import EmbeddingNormalizationMethod

if TYPE_CHECKING:
    from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams

EXPORT_FORMAT = "paddler-tui.embeddings/1"
# Similarities cost N² dot products in Python and a terminal shows few of them; beyond this many
# documents only the first ones are compared (the export says which).
SIMILARITY_LIMIT = 48


@dataclass(frozen=True)
class ResultRow:
    document_id: str
    content: str
    agent: str | None
    embedding: list[float]
    norm: float
    pooling_type: str


@dataclass
class EmbeddingRun:
    params: GenerateEmbeddingBatchParams
    started_at: float
    rows: list[ResultRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rejected: Rejected | None = None
    transport: Transport | None = None
    transport_note: str = ""
    finished_at: float | None = None
    stopped: bool = False

    def apply(self, event: RunEvent) -> ResultRow | None:
        """Record ``event``; the new row when it produced one."""
        if isinstance(event, TransportChosen):
            self.transport, self.transport_note = event.transport, event.reason
        elif isinstance(event, Produced):
            embedding = event.embedding
            row = ResultRow(
                document_id=embedding.source_document_id,
                content=self._contents.get(embedding.source_document_id, ""),
                agent=event.generated_by,
                embedding=embedding.embedding,
                norm=vector_norm(embedding.embedding),
                pooling_type=embedding.pooling_type,
            )
            self.rows.append(row)
            return row
        elif isinstance(event, DocumentTooLarge):
            self.problems.append(
                f"document {event.document_id} has {event.document_tokens} tokens, more than "
                f"n_batch {event.n_batch}: shorten it or raise n_batch on the cluster screen"
            )
        elif isinstance(event, ChunkFailed):
            code = f"{event.code} " if event.code is not None else ""
            self.problems.append(f"{code}{event.description}")
        else:
            self.rejected = event
        return None

    def finish(self, now: float) -> None:
        self.finished_at = now

    @property
    def _contents(self) -> dict[str, str]:
        return {document.id: document.content for document in self.params.input_batch}

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def state(self) -> str:
        return "running" if self.running else "stopped" if self.stopped else "done"

    def elapsed(self, now: float) -> float:
        return (self.finished_at if self.finished_at is not None else now) - self.started_at

    def documents_per_second(self, now: float) -> float | None:
        elapsed = self.elapsed(now)
        return len(self.rows) / elapsed if elapsed > 0 and self.rows else None

    def ordered_rows(self) -> list[ResultRow]:
        """Rows in document order (they arrive in the order the agents finish)."""
        order = {document.id: index for index, document in enumerate(self.params.input_batch)}
        return sorted(self.rows, key=lambda row: order.get(row.document_id, len(order)))

    def similarity(self) -> tuple[list[str], list[list[float | None]]]:
        """The compared documents' ids and their cosine similarities."""
        rows = self.ordered_rows()[:SIMILARITY_LIMIT]
        return (
            [row.document_id for row in rows],
            cosine_similarity_matrix([row.embedding for row in rows]),
        )

    def export(self) -> dict[str, Any]:
        """A JSON-ready record: inputs, vectors, similarities and how the run went."""
        rows = self.ordered_rows()
        ids, matrix = self.similarity()
        return {
            "format": EXPORT_FORMAT,
            "normalization_method": codec.to_jsonable(
                codec.adapter_for(EmbeddingNormalizationMethod),
                self.params.normalization_method,
            ),
            "transport": self.transport,
            "elapsed_seconds": (
                round(self.elapsed(self.finished_at), 6) if self.finished_at is not None else None
            ),
            "documents": [
                {
                    "id": row.document_id,
                    "content": row.content,
                    "generated_by": row.agent,
                    "pooling_type": row.pooling_type,
                    "norm": row.norm,
                    "embedding": row.embedding,
                }
                for row in rows
            ],
            "cosine_similarity": {"ids": ids, "matrix": matrix},
            "problems": list(self.problems),
        }
