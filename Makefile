# vbert: two commands for a newcomer, `make demo` and `make test`; everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0
SHARED ?= ../shared/data
RECIPE ?= recipes/end-task-aware.yaml
MODEL_NAME = $(shell $(BIN)/python -m vbert.core.params freeze.model_name)

.PHONY: setup help demo adapt test test-fast lint serve-openvino serve-tf bench bench-tfrecords bench-models data-full push plots clean

setup: $(STAMP)  ## create .venv with the pinned dependencies (idempotent)

help:  ## list the targets and what each does
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-zA-Z_-]+):.*## (.*)/\1\t\2/' | expand -t 18

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH" >&2; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $$($(BIN)/python -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml','rb'))['tool']['vbert']['no_deps']))")
	test -d .git || git init --quiet
	test -d .dvc || $(BIN)/dvc init --quiet
	touch $@

demo: setup  ## run the pipeline on the bundled sample, then print what it produced
	$(BIN)/dvc repro ir
	@echo; $(BIN)/python -m vbert.tools.summary metrics

adapt: setup  ## an adaptation recipe (RECIPE=recipes/end-task-aware.yaml; recipes/every-arm.yaml: every arm) as a DVC experiment, the best cell by eval kept
	$(BIN)/python -m vbert.tools.recipe $(RECIPE) --exp-run -- $(ARGS) finetune
	@$(BIN)/python -m vbert.tools.summary metrics

test: setup  ## the whole test suite
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: setup  ## what needs no model training, server or DVC run (a minute or two): pytest -m "not slow and not heavy"
	$(BIN)/python -m pytest -n 2 -m "not slow and not heavy"

lint: setup  ## ruff check and ruff format --check
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

serve-openvino: setup  ## serve the demo's model (OpenVINO IR) on http://127.0.0.1:8501 (TF-Serving's REST API)
	$(BIN)/python -m vbert.serving --backend openvino --model-dir models/ir/$(MODEL_NAME) --port 8501

serve-tf: setup  ## the same model as a TF SavedModel in process, same API
	$(BIN)/python -m vbert.serving --backend tensorflow --model-dir models/serving/$(MODEL_NAME) --port 8501

bench: setup  ## the bench stage: Table 3 for BERT-base (random weights) and the demo's model, ~45 min here
	$(BIN)/dvc repro bench
	@sed -n '/^## Targets/,/^Times/p' reports/bench.md | head -n -1
	@echo "the whole report: reports/bench.md; the numbers: metrics/bench.json, reports/bench.json"

bench-tfrecords: setup  ## throughput and peak memory against Google's create_pretraining_data.py
	$(BIN)/python benchmarks/tfrecords_vs_google.py --megabytes 16 --out benchmarks/results/tfrecords.json

bench-models: setup  ## pretraining and fine-tuning examples/s, tiny and MiniLM, XLA on and off
	$(BIN)/python benchmarks/model_speed.py --out benchmarks/results/model_speed.json

data-full: setup  ## bring the full corpora and the pkg_section task from $(SHARED) under DVC (see data/README.md)
	mkdir -p data/full
	cp $(SHARED)/corpus/docs.txt.gz $(SHARED)/corpus/informal.txt.gz data/full/
	cp -r $(SHARED)/tasks/pkg_section data/full/
	$(BIN)/dvc add data/full   # versioned in DVC's cache; data/.gitignore keeps it and its .dvc file out of git

plots/vega/node_modules: plots/vega/package.json plots/vega/package-lock.json
	cd plots/vega && npm ci --no-audit --no-fund --silent

.cache/vega-offline.html: plots/vega/node_modules vbert/tools/plots.py
	$(BIN)/python -m vbert.tools.plots plots/vega/node_modules $@

plots: setup .cache/vega-offline.html  ## render `dvc plots` to reports/plots/index.html, viewable offline
	mkdir -p reports/plots
	$(BIN)/dvc plots show --html-template .cache/vega-offline.html -o reports/plots

push: setup  ## dvc push: the tracked data and models to the remote
	$(BIN)/dvc push

clean:  ## remove the demo's intermediate outputs (data/clean, data/tfrecords, models/vocab, metrics)
	rm -rf data/clean data/tfrecords models/vocab metrics
