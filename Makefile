# Two commands: `make demo` and `make test`. Each creates .venv and installs gridsweep.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; on this project's machines it installs from local disk.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= test,neural,stats,ray,lint,docs

.PHONY: demo test test-slow test-all lint install bench clean docs

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

# The default suite (a few minutes on 2 cores): everything not marked slow.
test: $(VENV)/.installed
	$(PY) -m pytest -q -m "not slow"

# The slow scientific checks (pattern formation, end-to-end reproduction, Ray, ...).
test-slow: $(VENV)/.installed
	$(PY) -m pytest -q -m slow

test-all: test test-slow

# Lint and static types, as CI runs them.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/mypy --no-incremental

demo: $(VENV)/.installed
	$(VENV)/bin/gridsweep reproduce --preset quick_seeds

# The documentation site into site/ (open site/index.html): the gallery from a tiny
# reproduction run (reused from sweeps_out/reproduce_tiny when present, else made: a few
# minutes), then mkdocs build --strict.
docs: $(VENV)/.installed
	@test -x $(VENV)/bin/mkdocs || $(PY) -m pip install -q -e ".[docs]"
	MPLBACKEND=Agg $(PY) scripts/make_gallery.py --run-tiny
	$(VENV)/bin/mkdocs build --strict

bench: $(VENV)/.installed
	for b in bench/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build dist src/*.egg-info
