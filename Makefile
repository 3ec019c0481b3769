# mcalc — two commands on a fresh machine with Python 3.11:
#   make book   builds the whole book on the embedded default (the offline phantom)
#   make test   runs every notebook on a tiny phantom, the unit tests, then the notebooks under nbval
# Both create (or reuse) the virtual environment .venv themselves.
# For contributors: make units (fast tests, seconds), make units-all (every unit test),
# make lint (ruff check + format check + lint-imports, the stages import only downward; .ci/run runs it before make test).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mcalc-installed

.PHONY: lint venv book test units units-all notebooks-ci papermill-override nbval book-ci book-check benchmark clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,dev]"
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(PY) -m mcalc book --profile default

# The CI notebooks first: unit tests that only check what a notebook shows read those executions
# (tests/conftest.py ci_executed, when up to date with the sources) instead of running it again.
test: notebooks-ci units-all papermill-override nbval book-ci book-check

# The fast unit tests: everything not marked slow (no backbone built, no kernel started, nothing trained).
# What makes a test slow has its own marker (pyproject.toml): e.g. -m "not kernel" leaves out the tests
# that start a Jupyter kernel, -m backbone runs only those that use the InceptionResNetV2 backbone.
units: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

# Every unit test, the slow ones included (what make test runs), on every core: one test file per
# worker at a time (--dist loadfile), so a module's shared fixtures are built once.
XDIST := -n auto --dist loadfile --durations=20
units-all: $(STAMP)
	$(PY) -m pytest tests $(XDIST)
	$(DONE)

lint: $(STAMP)
	$(VENV)/bin/ruff check mcalc tests benchmarks notebooks
	$(VENV)/bin/ruff format --check mcalc tests benchmarks notebooks
	$(VENV)/bin/lint-imports

# Each step of make test says when it ended (CI's log then shows where the minutes went).
DONE = @echo "[make] $@ done at $$(date +%T)"

notebooks-ci: $(STAMP)
	$(PY) -m mcalc notebooks --profile ci
	$(DONE)

# The README's re-run recipe: one template, other parameters, straight through papermill.
# TF_CPP_MIN_LOG_LEVEL=3 (logging only, same results): the kernel echoes TensorFlow's C++ log to the
# terminal; this drops its warnings and errors (E0000 ... use_unbounded_threadpool). TensorFlow 2.21's
# oneDNN notice at import ignores it (TF_ENABLE_ONEDNN_OPTS=0 would hide it but changes the numerics).
papermill-override: notebooks-ci
	$(VENV)/bin/jupytext --to ipynb --set-kernel python3 notebooks/03_optimizer.py -o build/ci/03_optimizer.ipynb
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/papermill --cwd . build/ci/03_optimizer.ipynb build/ci/03_optimizer_override.ipynb \
		-p optimizer rmsprop -p learning_rate 1e-3 -p epochs 5 \
		-p results_dir build/ci/results -p image_size 75 -p validation_size 0.2 -p n_boot 50
	$(DONE)

nbval: notebooks-ci papermill-override
	$(PY) -m pytest -p no:cacheprovider $(XDIST) --nbval-lax --nbval-current-env --nbval-cell-timeout=900 build/ci/notebooks
	$(DONE)

book-ci: notebooks-ci
	$(PY) -m mcalc book --profile ci --no-execute
	$(DONE)

# Every page of the CI book in headless Chromium at 1300 and 390 px: nothing wider than the text column (nor,
# on the phone, than the screen), no code or parameters shown by default, a banner of at most two lines, the
# intro's bottom-line box (.mcalc-bottom-line) on its first screen, no run output (traceback, /root/,
# gaierror, saved:, nan), figure images at least 2x their displayed width; screenshots of every page at both
# widths in build/ci/screenshots (skipped, with the reason, where no browser can be had).
book-check: book-ci
	$(PY) -m mcalc.report.browsercheck build/ci/book/_build/html --screenshots build/ci/screenshots
	$(DONE)

benchmark: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf _build build book/executed
