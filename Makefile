# Two set-up commands for a new machine (see README):
#   make demo   install into .venv and scan bundled demo data against a demo bank
#   make test   install into .venv (with test extras) and run the test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps invisible-watermark==0.2.0 case-utils==0.18.0

demo: install
	$(BIN)/assay demo

test: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

bench: $(BIN)/python
	$(BIN)/pip install -q -e '.[test,bench]'
	@echo "each benchmark states its command in bench/RESULTS.md"

clean:
	rm -rf $(VENV) demo-data
