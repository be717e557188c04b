"""CORS settings matching Paddler's actix-cors setup (``--*-cors-allowed-host``)."""

from __future__ import annotations

from typing import Any


def cors_middleware_options(allowed_origins: list[str]) -> dict[str, Any]:
    """Keyword arguments for Starlette's ``CORSMiddleware``.

    Origins match exactly, scheme included (``http://example.com``), as in Paddler; an empty list
    allows no cross-origin requests at all.
    """
    return {
        "allow_origins": list(allowed_origins),
        "allow_methods": ["DELETE", "GET", "POST", "PUT", "OPTIONS"],
        "allow_headers": ["Accept", "Authorization", "Content-Type"],
        "max_age": 3600,
    }
