# Two commands: `make demo` and `make test`. Each creates .venv and installs gridsweep.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; on this project's machines it installs from local disk.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= test,neural,stats,ray

.PHONY: demo test test-fast install bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

demo: $(VENV)/.installed
	$(VENV)/bin/gridsweep reproduce --preset quick

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
