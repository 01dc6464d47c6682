# nasnc: two commands on a fresh machine.
#   make quickstart   create .venv, install, run the main job (SQLite + local HDF5)
#   make test         create .venv, install with the dev extra, run the test suite
#
# TORCH_SPEC picks the torch build. The default resolves to a CPU wheel on the
# development machines and to the normal build elsewhere; GPU users may choose,
# e.g. `make test TORCH_SPEC='torch==2.13.0'` with a CUDA index configured in pip.

PYTHON      ?= python3
VENV        ?= .venv
TORCH_SPEC  ?= torch==2.13.0
# data: $NASNC_DATA_DIR, else ../shared/data where it exists, else ./data
# (quickstart downloads CIFAR-10 there, checksum-verified, when it is missing)
DATA_ROOT   ?= $(or $(NASNC_DATA_DIR),$(if $(wildcard ../shared/data),../shared/data,data))
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip --disable-pip-version-check
CONSTRAINTS := requirements/constraints.txt
PYTEST_ARGS ?=

.PHONY: quickstart test lint typecheck check venv install install-dev clean benchmarks

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[bench]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[bench,nb201,postgres,dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

quickstart: $(VENV)/.installed
	$(VENV)/bin/nasnc search configs/quickstart.yaml --data-root "$(DATA_ROOT)" --download

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check nasnc search tests benchmarks
	$(VENV)/bin/ruff format --check nasnc search tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache runs
