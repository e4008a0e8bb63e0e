# The README's two commands: `make run` (the registry on this machine) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint format bench bench-soak campaign clean localstack

# LocalStack's S3 (real presigned-URL signature checks) needs Python 3.13; .ci/run installs it,
# elsewhere its tests are skipped when it is missing.
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13))
LOCALSTACK_VENV := .localstack-venv

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Data persists in .stratus/data (STRATUS_DATA_DIR moves it); run-fresh starts empty in a
# temporary folder, leaving .stratus/data as it was.
run: $(STAMP)
	$(PY) -m chalicelib.local

run-fresh: $(STAMP)
	STRATUS_DATA_DIR=$$(mktemp -d -t stratus-data.XXXXXX) $(PY) -m chalicelib.local

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

# The fast loop: unit tests only (no servers, no third-party clients), the 10,000-tag test aside.
unit: $(STAMP)
	$(PY) -m pytest tests/unit -k "not ten_thousand"

typecheck: $(STAMP)
	$(PY) -m mypy

# Also needs skopeo and, for the side-by-side, Distribution: apt-get install docker-registry.
# BENCH="calls latency" runs only those; `python -m bench --help` lists them.
bench: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench $(BENCH)

# The property-based campaign of the test suite, far longer and with fresh random input each
# run (make test runs it derandomized, 30 examples per route family).
campaign: $(STAMP)
	STRATUS_CAMPAIGN_EXAMPLES=$${STRATUS_CAMPAIGN_EXAMPLES:-1000} STRATUS_CAMPAIGN_RANDOM=1 \
		$(PY) -m pytest -p no:cacheprovider tests/unit/test_campaign.py

# Only the soak, not in `make test`: 10,000 pushes and pulls from 8 clients, local mode beside
# Distribution (~30 min). SOAK_ARGS="--images 200" for a quick look.
bench-soak: $(STAMP)
	$(PY) -m pip install --quiet -r bench/requirements.txt
	$(PY) -m bench soak -- $(SOAK_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

localstack: $(LOCALSTACK_VENV)/.installed

$(LOCALSTACK_VENV)/.installed: tests/localstack-requirements.txt
	$(PYTHON313) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install --quiet -r tests/localstack-requirements.txt
	touch $@

clean:
	rm -rf $(VENV) $(LOCALSTACK_VENV) .pytest_cache .ruff_cache .mypy_cache
