# Two commands for a newcomer on a fresh Debian machine with only Python:
#   make run    set everything up, then run the quickstart width-transfer sweep (embedded, in-process)
#   make test   set everything up, then run the test suite (what CI runs)
#   make test-fast  the edit-test loop: every test that needs no Ray, server, browser or real training
# (make docs builds the documentation site into site/, offline, failing on any broken link)
PYTHON ?= python3
VENV   ?= .venv
RESULTS ?= results
FASHION_MNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: setup system-deps native-deps test-deps run serve test test-fast docs bench clean compose-check

setup: system-deps native-deps $(VENV)/.installed

# Debian's Fashion-MNIST package; without apt (or root) the quickstart falls back to the bundled digits.
system-deps:
	@if [ ! -d $(FASHION_MNIST) ]; then \
	  if command -v apt-get >/dev/null; then \
	    ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist) \
	      || echo "warning: could not install dataset-fashion-mnist; sweeps will use the bundled digits"; \
	  else echo "warning: no apt-get; install Fashion-MNIST IDX files under \$$MUTRANSFER_DATA_DIR/fashion_mnist"; fi; \
	fi

# g++ builds the CPU fast path for the trainer's products (mutransfer/native: an XLA FFI call on
# OpenBLAS); without it the trainer keeps XLA's dots and says so once.
native-deps:
	@if ! command -v g++ >/dev/null; then \
	  if command -v apt-get >/dev/null; then \
	    ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq g++) \
	      || echo "warning: could not install g++; the trainer will use XLA's dots on CPU"; \
	  else echo "warning: no g++ and no apt-get; the trainer will use XLA's dots on CPU"; fi; \
	fi

# Debian's headless Chromium for the dashboard browser test (skipped, with a reason, without it).
test-deps:
	@if ! command -v chromium >/dev/null; then \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium) \
	    || echo "warning: could not install chromium; the browser test will be skipped"; \
	fi

$(VENV)/.installed: pyproject.toml mutransfer/native/bmm.cc
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[dev]"
	$(VENV)/bin/python -m mutransfer.native.build
	touch $@

run: setup
	@spec=sweeps/specs/quickstart.yaml; \
	[ -d $(FASHION_MNIST) ] || [ -n "$$MUTRANSFER_DATA_DIR" ] || spec=sweeps/specs/quickstart_digits.yaml; \
	$(VENV)/bin/mutransfer run $$spec --results $(RESULTS)

serve: setup
	$(VENV)/bin/mutransfer serve --results $(RESULTS)

# pytest-xdist workers (tests/conftest.py puts every test that starts Ray on one worker, as a group).
# `make test TEST_WORKERS=0` runs the suite serially.
TEST_WORKERS ?= 2
FAST_WORKERS ?= 2
# pytest's plugin autoload off and xdist loaded by name: hypothesis and schemathesis (installed for
# tests/test_api.py, which uses them as libraries) register pytest plugins the suite does not use,
# and pytest rewrites the asserts of every module of a plugin's package as it imports them: about
# 270 modules, 2-8 s of CPU in every pytest process (each xdist worker, each pytest a test starts;
# the variable reaches those too). docs/performance/index.md#process-start-up.
PYTEST := PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 $(VENV)/bin/pytest -p xdist

test: setup test-deps
	$(PYTEST) -q -n $(TEST_WORKERS) --dist loadgroup

test-fast: setup
	$(PYTEST) -q -m "not slow" -n $(FAST_WORKERS) --dist loadgroup

docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: setup
	$(VENV)/bin/python benchmarks/grid_throughput.py

# The docker-compose stack built and started for real (not part of `make test`: needs root, several
# GB of disk under /var/lib/mutransfer-compose-check and minutes); docs/operations/compose.md.
compose-check:
	$(SUDO) python3 docker/compose_check.py

clean:
	rm -rf $(VENV) $(RESULTS) .pytest_cache site
