# make run   set everything up and serve http://127.0.0.1:8000 with a Celery worker and beat
# make test  lint, type-check, check migrations, run the test suite

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The embedded default runs with DEBUG on (a local key is generated under var/).
LOCAL := DEBUG=$${DEBUG:-true}

.PHONY: run test lint clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(STAMP)
	$(LOCAL) $(BIN)/python manage.py migrate --noinput
	$(LOCAL) $(BIN)/python manage.py seed_demo
	$(LOCAL) $(BIN)/python manage.py seed_findings
	$(LOCAL) PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho --procfile Procfile.dev start

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(LOCAL) $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/mypy .

test: lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) var
