# corecircle: every target installs what it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
PORT   ?= 8000
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	@echo "chat page: http://127.0.0.1:$(PORT)/chat/demo-family   console: http://127.0.0.1:$(PORT)/console/ (demo-agent / demo)"
	$(BIN)/corecircle serve --demo --host 127.0.0.1 --port $(PORT)

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/nlu.py
	$(BIN)/python benchmarks/pipeline.py

clean:
	rm -rf $(VENV) .data .pytest_cache
