# Backprop Lab. Two commands do all set-up: `make lab` (students) and `make test` (everyone).
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8888
JOBS   ?= auto
# BROWSER=no starts JupyterLab without opening a browser (the default where there is no display).
BROWSER ?= $(if $(or $(DISPLAY),$(WAYLAND_DISPLAY),$(filter Darwin,$(shell uname -s))),yes,no)
LAB_FLAGS := --ServerApp.root_dir=notebooks --port=$(PORT) $(if $(filter no,$(BROWSER)),--no-browser) \
             $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.port_retries=0

.PHONY: lab test test-fast lint release check-release grade grade-demo bench clean help student-kit

help:
	@echo "make lab        open JupyterLab on notebooks/ (BROWSER=no for a headless machine)"
	@echo "make test       run every test (creates .venv on first use)"
	@echo "make release    regenerate solutions/*.ipynb from their .py sources, then notebooks/ with nbgrader"
	@echo "make grade SUBMISSIONS=dir OUT=dir   grade a whole class"
	@echo "make grade-demo grade the demo class in autograder/demo"
	@echo "make bench      print the benchmark table"
	@echo "make student-kit  build dist/student-kit: what a course hands its students (no answers)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

lab: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/jupyter lab $(LAB_FLAGS) notebooks/lab1_perceptron/perceptron.ipynb

test: $(STAMP)
	$(BIN)/ruff check lib tests autograder tools bench solutions
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n $(JOBS) $(PYTEST_ARGS)

test-fast: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n $(JOBS) -m "not slow and not browser"

lint: $(STAMP)
	$(BIN)/ruff check lib tests autograder tools bench solutions

release: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m backproplab_autograder.release

check-release: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m backproplab_autograder.release --check

grade: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/backproplab-grade $(SUBMISSIONS) --out $(or $(OUT),grading-output)

grade-demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m backproplab_autograder.demo

bench: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m bench.run

student-kit: $(STAMP)
	$(BIN)/python -m backproplab_autograder.studentkit $(or $(OUT),dist/student-kit)

clean:
	rm -rf autograder/runtime grading-output bench/results .pytest_cache dist
