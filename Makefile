# make run   set everything up and serve http://127.0.0.1:8000 with a Celery worker and beat
# make test  lint, type-check, check migrations, run the test suite

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The embedded default runs with DEBUG on (a local key is generated under var/).
LOCAL := DEBUG=$${DEBUG:-true}

# The embedded default simulates AWS as well: Procfile.dev's `aws:` process serves moto on
# port 5000 and seeds a demo estate, and web, worker and beat are pointed at it, with demo
# credentials that replace any real ones in your shell. Setting AWS_ENDPOINT_URL yourself (for
# example http://127.0.0.1:5001 when 5000 is taken) opts out of all four: your endpoint,
# credentials (any will do for moto) and region are used as they are, and the `aws:` process
# serves on that endpoint's port.
ifeq ($(strip $(AWS_ENDPOINT_URL)),)
run: export AWS_ENDPOINT_URL := http://127.0.0.1:5000
run: export AWS_ACCESS_KEY_ID := demo
run: export AWS_SECRET_ACCESS_KEY := demo
run: export AWS_DEFAULT_REGION := eu-west-1
endif

.PHONY: run test lint clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

run: $(STAMP)
	$(LOCAL) $(BIN)/python manage.py migrate --noinput
	$(LOCAL) $(BIN)/python manage.py load_playbooks
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
