"""What a request body may be: the size cap and the error for a body that is refused.

The domain and the OpenAI translations name these without knowing HTTP; ``web/http_body.py``
reads bodies with them.
"""

from __future__ import annotations

# Paddler's default cap on a request body.
DEFAULT_BODY_LIMIT = 2 * 1024 * 1024


class BodyError(Exception):
    """A body that cannot be read as the request's model: its 4xx status and why."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
