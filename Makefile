# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, run the main job (demo report on the synthetic data)
#   make test   - create .venv if needed, install, run the test suite
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
# CPU build of torch, installed only when the environment has no torch yet, so that a CUDA
# user's existing install is never replaced. Override: make setup TORCH_SPEC='torch==2.13.0'.
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup demo test test-all test-browser bench clean-reports

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[workbench,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (diffupose)" >/dev/null
	touch $@

demo: setup
	$(VENV)/bin/diffupose report --profile demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-browser: setup
	$(PY) -m pytest -q -m browser $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q -m "" $(PYTEST_ARGS)

bench: setup
	$(PY) benchmarks/throughput.py --quick

clean-reports:
	find reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
