# Switchboard: `make run` starts everything with demo data; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest-xdist processes for `make test` (each with its own test database and Redis db);
# `--dist load` keeps pytest-django's order (plain database tests before transactional ones).
TEST_WORKERS ?= 2

.PHONY: run test e2e install check-services lint format migrate demo bench clean-venv

run: check-services install  ## set up and start web + worker + beat with demo data
	@$(BIN)/python scripts/ensure_database.py
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_niches
	$(BIN)/python manage.py seed_demo
	PATH="$(CURDIR)/$(BIN):$$PATH" PROMETHEUS_MULTIPROC_DIR="$(CURDIR)/var/prometheus" WEB_BIND="$${WEB_BIND:-127.0.0.1:8000}" \
		$(BIN)/honcho start -f Procfile

test: check-services install  ## lint, then the whole test suite on local PostgreSQL and Redis
	$(BIN)/ruff check .
	@bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist load

e2e: check-services install  ## end-to-end suite with a real n8n (installed once into ~/.cache/switchboard)
	@N8N_BIN="$$(bash scripts/install_n8n.sh)" && $(BIN)/python e2e/run.py --n8n "$$N8N_BIN"

check-services:
	@$(PYTHON) scripts/check_services.py

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean-venv:
	rm -rf $(VENV)
