"""The optional API key shared by the balancer and its callers: where it comes from, how it is sent.

Kept free of heavy imports: the CLI, the client, the agent and the balancer all use it.
"""

from __future__ import annotations

import os

API_KEY_ENV = "PADDLER_TUI_API_KEY"


def api_key_from_env() -> str | None:
    """``$PADDLER_TUI_API_KEY``; unset and empty both mean no key."""
    return os.environ.get(API_KEY_ENV) or None


def authorization_headers(api_key: str | None) -> dict[str, str]:
    """The ``Authorization: Bearer`` header for ``api_key``, or none without a key."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}
