# Two commands matter: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_DIR := editor-support/vscode

.PHONY: demo test venv goldens clean bench editor-test vsix browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/routing warm
	touch $(STAMP)

venv: $(STAMP)

# `routing warm` compiles the fast engine into numba's cache (engine/warm.py): a second when
# it is already there, so no demo step and no test pays the compile.
demo: $(STAMP)
	$(BIN)/routing warm
	$(BIN)/routing check examples/
	$(BIN)/routing fmt --check examples/
	$(BIN)/routing test examples/ --coverage
	$(BIN)/routing compile examples/omnichannel/omnichannel.route -o $(VENV)/omnichannel.plan.json
	$(BIN)/routing run $(VENV)/omnichannel.plan.json --snapshot examples/omnichannel/snapshot.json --out $(VENV)/omnichannel.result.json
	$(BIN)/routing explain examples/omnichannel/omnichannel.route --snapshot examples/omnichannel/snapshot.json --order O-1002 --facility WH_NJ
	$(BIN)/routing run examples/shipping_cost/shipping_cost.route --snapshot examples/shipping_cost/snapshot.json --out $(VENV)/shipping_cost.result.json
	$(BIN)/routing explain examples/shipping_cost/shipping_cost.route --snapshot examples/shipping_cost/snapshot.json --order C-2 --facility ST_BOS

test: $(STAMP) browser
	$(BIN)/ruff check routing_dsl tests examples
	$(BIN)/routing warm
	$(BIN)/python -m pytest -q -n 2 --dist worksteal
	$(MAKE) --no-print-directory editor-test

# The console's browser tests drive Debian's chromium: install it when it is missing and apt
# can (as root); otherwise say so, and pytest reports those tests as skipped.
browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the console's browser tests (apt-get)"; \
		apt-get install -y -q chromium >/dev/null 2>&1 \
			|| { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
			|| echo "could not install chromium: the console's browser tests will be skipped"; \
	else echo "chromium is missing and apt-get is not usable here: the console's browser tests will be skipped"; fi

# TextMate grammar tests and a type check of the VS Code client, when Node.js is present.
editor-test:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "skipping editor grammar tests: node/npm not found"; exit 0; fi; \
	cd $(NPM_DIR) && { test -d node_modules || npm ci --no-audit --no-fund --loglevel=error \
		|| { echo "skipping editor grammar tests: npm could not install the test tools"; exit 0; }; } \
		&& npm test --silent && npm run package --silent >/dev/null && rm -f routing-dsl.vsix \
		&& echo "VS Code extension packages"

# The VS Code extension package (editor-support/vscode/routing-dsl.vsix).
vsix:
	cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error && npm run package

bench: $(STAMP)
	$(BIN)/routing bench

goldens: $(STAMP)
	$(BIN)/python -m pytest -q --update-goldens

clean:
	rm -rf $(VENV) build dist .pytest_cache
