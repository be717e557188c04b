"""Everything the client raises: one hierarchy, so callers catch ``ClientError``."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every client failure."""


class BalancerUnreachableError(ClientError):
    """Nothing answered at the address (refused, reset, timed out, DNS)."""


class HttpStatusError(ClientError):
    """The balancer answered with a status that is not success; ``text`` is its body."""

    def __init__(self, status_code: int, text: str) -> None:
        super().__init__(f"HTTP {status_code}: {text}" if text else f"HTTP {status_code}")
        self.status_code = status_code
        self.text = text


class MalformedResponseError(ClientError):
    """The balancer sent something that is not the protocol (bad JSON, unknown shape)."""
