# Two commands set everything up on a fresh machine with python3, pip and make:
#   make demo   the whole story on embedded defaults (SQLite, DuckDB, local MLflow)
#   make test   lint, type checks and the test suite (PostgreSQL too when RECOUP_TEST_POSTGRES_URL is set)
# Both install uv (into .tools/ when it is not on PATH) and the locked environment the first time.

SHELL := /bin/bash
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
PYTEST_WORKERS ?= 2

export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export UV_NO_PROGRESS := 1

.PHONY: demo test lint typecheck unit bench-billing clean

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check uv

# The environment's bytecode is compiled once, here: where PYTHONDONTWRITEBYTECODE is set (as on
# many CI machines) every process would otherwise compile pandas, SQLAlchemy, MLflow... again.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	@touch $@

demo: .venv/.synced
	$(UV) run recoup demo

lint: .venv/.synced
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: .venv/.synced
	$(UV) run mypy

test: lint typecheck
	$(UV) run pytest -n $(PYTEST_WORKERS)

bench-billing: .venv/.synced
	$(UV) run python benchmarks/billing_run.py --invoices 1000000

clean:
	rm -rf .venv $(TOOLS) data .pytest_cache .mypy_cache .ruff_cache
