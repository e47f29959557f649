# The two quick-start commands (see README): `make demo` and `make test`. Both set everything up first.
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_MODEL ?= resnet18

.PHONY: setup demo test lint docs

setup:
	@bash tools/setup.sh

## Export a zoo model to a validated ONNX file, then benchmark it on CPU against its theoretical FLOPs.
demo: setup
	$(BIN)/edgecnn export $(DEMO_MODEL) -o artifacts/ --force
	$(BIN)/edgecnn bench artifacts/$(DEMO_MODEL).onnx --provider cpu --batch 1,8

lint: setup
	$(BIN)/ruff check edgecnn tests tools
	$(BIN)/lint-imports

## The documentation site (mkdocs.yml): --strict turns a broken link or anchor, or a page missing from the nav,
## into a failure (not with --quiet: it hides the warnings that strict mode counts).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## The whole test suite (what CI runs).
test: setup lint docs
	$(BIN)/python -m pytest
