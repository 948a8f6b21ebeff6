"""Domain errors every service raises; the HTTP shell maps them to 4xx responses naming a field."""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """A request that is well-formed but not allowed by the domain (→ 409 or 422)."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        status_code: int = 409,
        location: str = "body",
        context: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status_code = status_code
        self.location = location
        self.context = dict(context or {})
        """Figures a client can act on (e.g. ``available`` when an amount does not fit)."""


class NotFound(DomainError):
    """A resource that does not exist (→ 404)."""

    def __init__(self, what: str, identifier: str) -> None:
        super().__init__(f"{what} {identifier!r} not found", field=None, status_code=404)


class Forbidden(DomainError):
    """The caller's role or identity does not allow this (→ 403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field=None, status_code=403)
