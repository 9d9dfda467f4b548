# Quick start: `make demo` and `make test`. Each first sets up what is missing
# (tools/setup_env.py: a project-local .venv, or the active environment if it
# already has torch); a second run with everything in place starts at once.
PYTHON ?= python3
PY = $(shell $(PYTHON) tools/setup_env.py --print-python)

.PHONY: setup demo demo-seg demo-backbone test docs clean

# ALLOW_ENV_CHANGES=1 (`make test ALLOW_ENV_CHANGES=1`) lets setup install,
# upgrade or downgrade packages in an activated environment that has torch;
# without it setup lists what would change there and stops.
setup:
	@$(PYTHON) tools/setup_env.py $(if $(filter 1,$(ALLOW_ENV_CHANGES)),--allow-env-changes)

demo: setup
	@$(PY) tools/demo.py

demo-seg: setup
	@$(PY) tools/demo_seg.py

demo-backbone: setup
	@$(PY) tools/demo_backbone.py

test: setup
	@$(PY) -m pytest -q --doctest-modules mobileone_mm tests

# The documentation (docs/en/, Sphinx + myst-parser) as HTML in
# docs/en/_build/html; every warning is an error (a broken link, a page missing
# from a toctree, a docstring of the API reference that does not parse).
docs: setup
	@$(PY) -m sphinx -W --keep-going -q -b html docs/en docs/en/_build/html
	@echo "docs: docs/en/_build/html/index.html"

# Removes only what the demos generated (folders holding their stamp) and
# pytest's cache; trained models elsewhere under work_dirs/ stay.
clean:
	@for d in work_dirs/demo work_dirs/demo_seg data/shapes data/shapes_seg; do \
		if [ -f $$d/.mobileone_mm-demo ]; then echo "rm -rf $$d"; rm -rf $$d; fi; done
	rm -rf .pytest_cache docs/en/_build
