# padtui — everything a fresh machine needs goes through these targets.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU ?= torch==2.13.0

.PHONY: setup run demo test bench bench-scale clean

$(BIN)/padtui: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# A bare `torch` requirement pulls a multi-GB CUDA build: take the CPU wheel first when no torch is present.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH_CPU) || $(BIN)/pip install -q torch
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/padtui

setup: $(BIN)/padtui

run: setup
	$(BIN)/padtui
	@echo "next time: . $(VENV)/bin/activate && padtui   (or $(BIN)/padtui)"

demo: setup
	$(BIN)/padtui assets fetch
	$(BIN)/padtui run demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/pip install -q -e '.[bench]'  # what bench/recbole.py needs to import RecBole
	$(BIN)/padtui assets fetch
	$(BIN)/python -m pytest -q -m slow
	# every bench/*.py prints its table; quality.py reports the default and the authors' recipe on fresh seeds
	for b in bench/*.py; do [ $$b = bench/quality.py ] || $(BIN)/python $$b || exit 1; done
	$(BIN)/python bench/quality.py report --presets ml100k-sasrec-smollm2,ml100k-pad-official

bench-scale: setup
	$(BIN)/padtui assets fetch minilm
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) build *.egg-info
