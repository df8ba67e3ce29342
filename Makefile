# Two commands on a fresh machine: `make demo` and `make test`. Each (re)builds .venv when it is
# missing or older than pyproject.toml / this Makefile, then runs inside it.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.zoo-installed
# torch and torchvision must come from the same release line: install them together first.
TORCH_PINS := torch==2.15.0 torchvision==0.29.2

.PHONY: demo test test-all bench clean-venv

$(STAMP): pyproject.toml Makefile
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(TORCH_PINS)
	$(VENV)/bin/pip install -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/zoo demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/pip install -q -e '.[bench]' || echo "ncut-pytorch not installed: bench_ncut.py runs zoo only"
	for f in benchmarks/*.py; do $(VENV)/bin/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
