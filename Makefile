# Quick start: `make demo` and `make test`. Each first sets up what is missing
# (tools/setup_env.py: a project-local .venv, or the active environment if it
# already has torch); a second run with everything in place starts at once.
PYTHON ?= python3
PY = $(shell $(PYTHON) tools/setup_env.py --print-python)

.PHONY: setup demo demo-seg demo-backbone test clean

setup:
	@$(PYTHON) tools/setup_env.py

demo: setup
	@$(PY) tools/demo.py

demo-seg: setup
	@$(PY) tools/demo_seg.py

demo-backbone: setup
	@$(PY) tools/demo_backbone.py

test: setup
	@$(PY) -m pytest -q tests

clean:
	rm -rf work_dirs .pytest_cache
