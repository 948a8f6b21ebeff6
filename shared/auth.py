"""Bearer-token authentication and role checks for the HTTP APIs (SPEC §5)."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.settings import Role, TokenGrant

READERS: tuple[Role, ...] = ("admin", "cmo", "manager", "executor", "viewer")
WRITERS: tuple[Role, ...] = ("admin", "cmo", "manager", "executor")
"""Roles that change anything at all (viewers only read); routes narrow this further."""
PLANNERS: tuple[Role, ...] = ("admin", "cmo", "manager")
APPROVERS: tuple[Role, ...] = ("admin", "cmo")

_bearer = HTTPBearer(auto_error=False)


@dataclass(frozen=True)
class Principal:
    """The caller of a request."""

    subject: str
    role: Role


def grant_for(tokens: Mapping[str, TokenGrant], presented: str) -> TokenGrant | None:
    """The grant of the ``presented`` token, compared in constant time with every known token
    (a dictionary lookup would let response times hint at a token's prefix)."""
    candidate = presented.encode()
    found: TokenGrant | None = None
    for token, grant in tokens.items():
        if hmac.compare_digest(token.encode(), candidate):
            found = grant
    return found


def authenticate(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> Principal:
    """Resolve the bearer token against the tokens configured on the app (401 if unknown)."""
    tokens: dict[str, TokenGrant] = request.app.state.tokens
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=[{"loc": ["header", "Authorization"], "msg": "a bearer token is required"}],
            headers={"WWW-Authenticate": "Bearer"},
        )
    grant = grant_for(tokens, credentials.credentials)
    if grant is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=[{"loc": ["header", "Authorization"], "msg": "unknown bearer token"}],
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Principal(subject=grant.subject, role=grant.role)


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency admitting only callers whose role is one of ``roles`` (403 otherwise)."""

    def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if principal.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=[
                    {
                        "loc": ["header", "Authorization"],
                        "msg": f"role {principal.role!r} may not do this; needs one of "
                        + ", ".join(roles),
                    }
                ],
            )
        return principal

    return dependency
