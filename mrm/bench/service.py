"""The real services (measurement, execution) as child processes, observed only from outside.

Each gets its own data directory (and measurement its chDB path); the benchmark sees it through
its HTTP API (``/metrics``, the funnel, KPI and progress endpoints) and ``/proc/<pid>/status``,
never by opening its files (chDB allows one engine per process, and the service's is its own).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mrm.bench.kafka import BenchTimeout
from mrm.supervisor import spawn_service
from shared.embedded import free_port

TOKEN = "bench-viewer"


class ServiceProcess:
    """``python -m services.<name>`` against a given broker, in a data dir of its own."""

    name = "service"

    def __init__(self, *, bootstrap: str, data_dir: Path, extra_env: dict[str, str] | None = None):
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"{self.name}.log"
        self.http = httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    @property
    def pid(self) -> int:
        """The service's process id."""
        assert self.process is not None, "not started"
        return self.process.pid

    def own_env(self) -> dict[str, str]:
        """The service's own settings (beyond broker, data dir, port, tokens and logging)."""
        return {}

    def start(self, *, ready_timeout_s: float = 120.0) -> float:
        """Start the service and wait for ``/ready``; return the seconds that took."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "MRM_KAFKA_BOOTSTRAP": self.bootstrap,
            "MRM_KAFKA_IDEMPOTENCE": "false",  # the bench runs on the embedded broker (Tansu)
            "MRM_DATA_DIR": str(self.data_dir),
            f"MRM_{self.name.upper()}_PORT": str(self.port),
            "MRM_TOKENS": json.dumps({TOKEN: {"subject": "bench", "role": "viewer"}}),
            "MRM_LOG_JSON": "true",
            **self.own_env(),
            **self.extra_env,
        }
        started = time.perf_counter()
        self.process = spawn_service(self.name, env=env, log_path=self.log_path, inherit_mrm=False)
        deadline = time.monotonic() + ready_timeout_s
        while True:
            self.check_alive()
            try:
                if self.http.get("/ready").status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchTimeout(f"{self.name} not ready after {ready_timeout_s:.0f} s")
            time.sleep(0.1)

    def check_alive(self) -> None:
        """Raise if the service has exited (with the tail of its log)."""
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"{self.name} exited:\n" + "\n".join(tail))

    def metrics(self) -> dict[str, float]:
        """The service's Prometheus samples, ``name{label=value}`` → value (``mrm_`` prefix and
        ``service`` label dropped)."""
        text = self.http.get("/metrics").text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = ",".join(
                    f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "service"
                )
                name = sample.name.removeprefix("mrm_")
                out[f"{name}{{{labels}}}" if labels else name] = sample.value
        return out

    def rss_bytes(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak) of the service process, in bytes."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return fields

    def stop(self, *, grace_s: float = 30.0) -> None:
        """Stop the service (SIGTERM, SIGKILL after ``grace_s``)."""
        self.http.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class MeasurementProcess(ServiceProcess):
    """The measurement service, with its own chDB path."""

    name = "measurement"

    def own_env(self) -> dict[str, str]:
        """Its chDB path inside its data dir."""
        return {"MRM_CLICKHOUSE_URL": f"chdb://{self.data_dir / 'clickhouse'}"}

    def funnel(self, campaign_id: str | None = None) -> dict[str, int]:
        """The funnel's stage counts (company-wide without ``campaign_id``)."""
        params = {"campaign_id": campaign_id} if campaign_id else {}
        response = self.http.get("/api/v1/funnel", params=params)
        response.raise_for_status()
        return dict(response.json()["stages"])


class ExecutionProcess(ServiceProcess):
    """The execution service (its default store: a SQLite file in its data dir)."""

    name = "execution"

    def own_env(self) -> dict[str, str]:
        """Its throwaway store is migrated at start (no `mrm migrate` runs before a bench)."""
        return {"MRM_DATABASE_MIGRATE_ON_START": "true"}

    def campaigns(self, plan_id: str) -> list[dict[str, Any]]:
        """The plan's campaigns with their spend against plan (``GET /api/v1/campaigns``)."""
        response = self.http.get("/api/v1/campaigns", params={"plan_id": plan_id, "limit": 500})
        response.raise_for_status()
        return list(response.json())


def metric(samples: dict[str, float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    key = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return samples.get(f"{name}{{{key}}}" if key else name, 0.0)
