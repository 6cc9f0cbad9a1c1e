# Switchboard: `make run` starts everything with demo data; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install check-services lint format migrate demo bench clean-venv

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
	$(BIN)/python -m pytest

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
