# Two entry points: `make quickstart` and `make test`. Both install what is missing first
# (Debian rendering libraries, a virtual environment at .venv, the pinned packages) and are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: quickstart test test-fast test-sim install clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,onnx,ray]"
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/pokevla quickstart

# Fast unit tests first, then the (small) simulator tests.
test: $(STAMP)
	$(PY) -m pytest -q -m "not sim"
	$(PY) -m pytest -q -m "sim"

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not sim"

test-sim: $(STAMP)
	$(PY) -m pytest -q -m "sim"

clean:
	rm -rf $(VENV) build *.egg-info
