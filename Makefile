# curvbook: `make book` builds the site, `make test` runs the tests. Both create .venv if missing.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS := $(filter-out book/references.md book/notation.md,$(wildcard book/*.md))
NB_DIR := .tmp/nb
export CURVLIB_PROFILE ?= embedded
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Chapters run with book/ as their working directory: relative folders are made absolute here, against
# the directory make runs in (the repository root), so a chapter finds what `curvlib run` computed.
ifneq ($(strip $(CURVLIB_DATA)),)
export CURVLIB_DATA := $(abspath $(CURVLIB_DATA))
endif
ifneq ($(strip $(CURVLIB_CACHE)),)
export CURVLIB_CACHE := $(abspath $(CURVLIB_CACHE))
endif
ifneq ($(strip $(CURVLIB_SEED_DIR)),)
export CURVLIB_SEED_DIR := $(abspath $(CURVLIB_SEED_DIR))
endif

# Processes run side by side (chapter kernels, test workers), one torch thread each: on two cores, two
# two-thread processes oversubscribe them and stall (OpenMP waits on a descheduled thread).
JOBS ?= $(shell nproc 2>/dev/null || echo 1)
PYTEST_PAR := env OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:cacheprovider -n $(JOBS)

.PHONY: all setup vendor exec-cache-guard book book-fast test lint unit unit-fast chapters nbval notebooks bench clean-cache clean

all: book

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) (set PY=python3.x)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

vendor:
	bash book/_ext/vendor.sh

# Jupyter Book's execution cache is keyed by the chapters' code only: forget it whenever the
# profile, a CURVLIB_* variable, a model/checkpoint/seed card or curvlib's source changes, so a
# rebuild never shows another setting's or older code's output.
exec-cache-guard: $(STAMP)
	$(BIN)/python book/_ext/exec_cache_guard.py

# Command 1: execute every chapter on the active profile and write the static site.
# Chapters not in the execution cache are first executed JOBS at a time (book/_ext/parallel_execute.py);
# Jupyter Book then renders them from that cache.
book: $(STAMP) vendor exec-cache-guard
	rm -rf book/_build/html/reports
	@start=$$(date +%s); $(BIN)/python book/_ext/parallel_execute.py --jobs $(JOBS) && \
	  $(BIN)/jupyter-book build book --all --builder html; rc=$$?; \
	  $(BIN)/python book/_ext/timings.py --since $$start; \
	  echo "chapters executed and site built: $$(( $$(date +%s) - start )) s"; exit $$rc
	@if ls book/_build/html/reports/*.log >/dev/null 2>&1; then \
	  echo "a chapter failed to execute: see book/_build/html/reports/"; exit 1; fi
	@echo "site: $(CURDIR)/book/_build/html/index.html"

# Rebuild using the execution cache (only changed chapters re-run; curvlib's result cache keeps
# the heavy loops of re-run chapters fast too).
book-fast: $(STAMP) vendor exec-cache-guard
	$(BIN)/jupyter-book build book --builder html

notebooks: $(STAMP)
	rm -rf $(NB_DIR) && mkdir -p $(NB_DIR)
	for f in $(CHAPTERS); do $(BIN)/jupytext --quiet --to ipynb -o $(NB_DIR)/$$(basename $${f%.md}).ipynb $$f || exit 1; done

# Tests run in JOBS worker processes (pytest-xdist; an idle worker takes tests queued for a busy one); workers
# computing the same missing result share it (curvlib.cache.computing).

unit: $(STAMP)
	timeout 1800 $(PYTEST_PAR) --dist worksteal -q tests $(UNIT_ARGS)

# The unit tests without the end-to-end ones marked slow (training runs, torchrun, book builds).
unit-fast: $(STAMP)
	timeout 900 $(PYTEST_PAR) --dist worksteal -q tests -m "not slow"

# Chapters are executed top to bottom in a fresh kernel, one after another (every cell must run without error) and
# the "remove-cell" validation cells assert on the computed results; outputs are not compared.
nbval: notebooks
	timeout 3600 $(BIN)/python -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=2400 \
	  --nbval-kernel-startup-timeout=120 -p no:cacheprovider -q $(NB_DIR)

# Style and static checks (configuration in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check curvlib tests benchmarks book/_ext
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_layers.py

# Every chapter executed without error (its hidden validation cells assert on the results), JOBS at a time, into
# the execution cache; a chapter `make book` has just executed for the same code, library, data and profile is
# not executed again (exec-cache-guard forgets the cache when any of them changes). `make nbval` executes every
# chapter in a fresh kernel regardless.
chapters: $(STAMP) exec-cache-guard
	timeout 3600 $(BIN)/python book/_ext/parallel_execute.py --jobs $(JOBS) --strict

# Command 2: lint (ruff, the layering test), the other unit tests, then every chapter executed and validated.
test: $(STAMP)
	$(MAKE) lint
	$(MAKE) unit UNIT_ARGS=--ignore=tests/test_layers.py
	$(MAKE) chapters

bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

# Forgets both caches: curvlib's results (the default folder, and the profiles' folders in
# $$CURVLIB_CACHE where it is set — only those, so a mistyped CURVLIB_CACHE=$$HOME deletes nothing else)
# and the execution cache of Jupyter Book.
CACHE_PROFILES := embedded smoke paper-lite paper
clean-cache:
	rm -rf .cache/results book/_build/.jupyter_cache
	$(if $(strip $(CURVLIB_CACHE)),rm -rf $(foreach p,$(CACHE_PROFILES),"$(CURVLIB_CACHE)/$(p)"))

clean:
	rm -rf book/_build .tmp
