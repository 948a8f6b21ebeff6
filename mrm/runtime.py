"""What a running platform tells its tools: broker address, service URLs and dev tokens.

``mrm up`` writes it to ``<data_dir>/runtime.json``; ``mrm demo`` and other commands read it,
and environment variables override it.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

SERVICES: dict[str, int] = {
    "planning": 8001,
    "execution": 8002,
    "measurement": 8003,
    "notifier": 8004,
}
ROLES = ("admin", "cmo", "manager", "executor", "viewer")


@dataclass
class Runtime:
    """Where the platform runs and how to call it."""

    kafka_bootstrap: str
    urls: dict[str, str]
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    def broker(self) -> str:
        """The broker address, for commands that publish; exits with advice when none is known."""
        if not self.kafka_bootstrap:
            raise SystemExit(
                "No broker known: start the platform with `mrm up` or set MRM_KAFKA_BOOTSTRAP."
            )
        return self.kafka_bootstrap

    def token_for(self, role: str) -> str | None:
        """A token of ``role``, if one is known."""
        return next((t for t, grant in self.tokens.items() if grant["role"] == role), None)

    def save(self, data_dir: Path) -> Path:
        """Write ``runtime.json`` (readable by the owner only: it holds tokens)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "runtime.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)
        return path


def dev_tokens() -> dict[str, dict[str, str]]:
    """One random token per role for a development run."""
    subjects = {
        "admin": "admin",
        "cmo": "cmo",
        "manager": "manager",
        "executor": "executor",
        "viewer": "viewer",
    }
    return {
        f"dev-{role}-{secrets.token_hex(8)}": {"subject": subjects[role], "role": role}
        for role in ROLES
    }


def load(data_dir: Path) -> Runtime:
    """The runtime of ``mrm up`` in ``data_dir``, overridden by ``MRM_*`` variables."""
    path = data_dir / "runtime.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in SERVICES.items()}
    urls.update(saved.get("urls", {}))
    for name in SERVICES:
        override = os.environ.get(f"MRM_{name.upper()}_URL")
        if override:
            urls[name] = override.rstrip("/")
    bootstrap = os.environ.get("MRM_KAFKA_BOOTSTRAP") or saved.get("kafka_bootstrap") or ""
    tokens = saved.get("tokens", {})
    demo_token = os.environ.get("MRM_DEMO_TOKEN")
    if demo_token:
        tokens = {demo_token: {"subject": "demo", "role": "admin"}, **tokens}
    elif os.environ.get("MRM_TOKENS"):
        tokens = {**json.loads(os.environ["MRM_TOKENS"]), **tokens}
    return Runtime(kafka_bootstrap=bootstrap, urls=urls, tokens=tokens)
