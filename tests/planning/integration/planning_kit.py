"""What planning's HTTP tests share: tokens of each role and their headers."""

from __future__ import annotations

TOKENS = {
    "t-admin": {"subject": "root", "role": "admin"},
    "t-cmo": {"subject": "carla", "role": "cmo"},
    "t-manager": {"subject": "ann", "role": "manager"},
    "t-viewer": {"subject": "vic", "role": "viewer"},
    "t-nina": {"subject": "nina", "role": "manager"},
    "t-rita": {"subject": "rita", "role": "executor"},
    "t-rob": {"subject": "rob", "role": "executor"},
}


def auth(token: str) -> dict[str, str]:
    """The Authorization header of ``token``."""
    return {"Authorization": f"Bearer {token}"}
