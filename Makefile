# fusebench: `make bench` sets up and runs the benchmark; `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= default
WORKERS ?= 2
ARGS ?=
UI_PORT ?= 5000
TRACKING_URI ?= $(if $(MLFLOW_TRACKING_URI),$(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlruns.db)

.PHONY: install bench smoke test test-fast data report ui ui-check clean-cache help

help:
	@echo "make bench    install if needed, then run the benchmark matrix (PROFILE=$(PROFILE), WORKERS=$(WORKERS))"
	@echo "make test     install if needed, then run the test suite (all of it; wall time and 15 slowest tests at the end)"
	@echo "make test-fast  the unit tests only: skips the end-to-end tests marked slow (for development)"
	@echo "make data     prepare the built-in offline datasets"
	@echo "make report   rebuild the comparison report from the MLflow store"
	@echo "make ui       start the MLflow UI on 127.0.0.1:$(UI_PORT)"
	@echo "make ui-check screenshot the runs page in headless Chromium (reports/mlflow_ui.png)"

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -e ".[test]"
# the aisfx audio encoder's weights ship in its wheel; its pinned numpy/librosa are not needed (own front end)
	$(PY) -m pip install --quiet --no-deps "aisfx==0.1.2"
	$(PY) -c "import torchvision, transformers, datasets, mlflow, optuna"
	touch $(STAMP)

install: $(STAMP)

bench: install
	$(VENV)/bin/fusebench bench --profile $(PROFILE) --workers $(WORKERS) $(ARGS)

smoke: install
	$(VENV)/bin/fusebench bench --profile smoke $(ARGS)

data: install
	$(VENV)/bin/fusebench data

report: install
	$(VENV)/bin/fusebench report $(ARGS)

# The whole suite, unit and end-to-end (`slow`) tests; ends with the 15 slowest tests and the wall time.
# pytest exits 5 when it collects no tests (an empty selection in ARGS): a failure with a clear message.
test: install
	@start=$$(date +%s); $(PY) -m pytest --durations=15 $(PYTEST_SELECT) $(ARGS); rc=$$?; \
	echo "make test: wall time $$(( $$(date +%s) - start )) s, pytest exit status $$rc"; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure for this project" >&2; exit 1; fi; \
	exit $$rc

# Developers: the unit tests alone (a few minutes on 2 cores); `make test` is still the one that counts.
test-fast: PYTEST_SELECT = -m "not slow"
test-fast: test

# Prints the address of the fusebench runs page (experiment id looked up in the store), then serves the UI.
ui: install
	@$(VENV)/bin/fusebench ui --tracking-uri "$(TRACKING_URI)" --port $(UI_PORT)

# Browser check: `mlflow ui` on a free port, the runs page in headless Chromium -> reports/mlflow_ui.png
ui-check: install
	$(VENV)/bin/fusebench ui --tracking-uri "$(TRACKING_URI)" --screenshot $(ARGS)

clean-cache: install
	$(VENV)/bin/fusebench cache clear
