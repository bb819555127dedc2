# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv (python3 -m venv) and installs neurosim into it when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# `make bench`: Brian2 and jaxsnn live in their own environment, never in neurosim's.
# BENCH_ARGS=--quick for the small sizes.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ARGS ?=

.PHONY: demo test test-notebooks lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m neurosim demo

# XLA compiles on the calling thread: give it a 64 MiB stack where the limits allow.
# The tests are mostly compilation, one thread each: TEST_WORKERS processes (default 2,
# pytest-xdist) share them out file by file, so that module-scoped compiled functions
# are built once per file. TEST_WORKERS=0 runs them in this process. The 30 longest
# tests, and JAX's tracing and compile time per module, are listed at the end (where
# the suite's time goes, in every CI log). The suite compiles at LLVM's optimisation
# level 0 (tests/conftest.py); the tests marked default_compile then run at XLA's
# default level.
TEST_WORKERS ?= 2
test: $(STAMP)
	ulimit -s 65536 2>/dev/null || true; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=30 --compile-report && \
	NEUROSIM_TEST_XLA_OPT=default $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
		-m default_compile

# Executes every notebook (about a minute each on 2 CPU cores; the seventh, about 4).
test-notebooks: $(STAMP)
	ulimit -s 65536 2>/dev/null || true; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m notebooks tests/test_notebooks.py

$(BENCH_STAMP): benchmarks/requirements-bench.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r benchmarks/requirements-bench.txt
	touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP)
	$(PY) benchmarks/run_all.py --brian2-python $(BENCH_VENV)/bin/python \
		--jaxsnn-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check neurosim tests benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache
