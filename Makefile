# Two commands matter: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_DIR := editor-support/vscode

.PHONY: demo test venv goldens clean bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/routing check examples/
	$(BIN)/routing fmt --check examples/
	$(BIN)/routing compile examples/omnichannel/omnichannel.route -o $(VENV)/omnichannel.plan.json
	$(BIN)/routing run $(VENV)/omnichannel.plan.json --snapshot examples/omnichannel/snapshot.json --out $(VENV)/omnichannel.result.json
	$(BIN)/routing explain examples/omnichannel/omnichannel.route --snapshot examples/omnichannel/snapshot.json --order O-1002 --facility WH_NJ

test: $(STAMP)
	$(BIN)/python -m pytest -q

goldens: $(STAMP)
	$(BIN)/python -m pytest -q --update-goldens

clean:
	rm -rf $(VENV) build dist .pytest_cache
