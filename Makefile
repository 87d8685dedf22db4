# The two commands a new machine needs: `make demo` and `make test`. Both set up .venv first.
# `make dashboard-demo` runs a consumer with the web dashboard on http://127.0.0.1:8765/.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo dashboard-demo django-demo flask-demo fastapi-demo test lint dev bench clean

$(BIN)/huey: huey_core/pyproject.toml huey_memory/pyproject.toml huey_redis/pyproject.toml huey_sql/pyproject.toml huey_dashboard/pyproject.toml huey_django/pyproject.toml examples/example_backend/pyproject.toml requirements-dev.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e "huey_core[metrics]" -e huey_memory -e "huey_redis[hiredis]" -e "huey_sql[postgres,mysql]" -e "huey_dashboard[testing]" -e huey_django -e examples/example_backend
	touch $(BIN)/huey

dev: $(BIN)/huey

demo: dev
	cd examples && ../$(BIN)/python demo.py

dashboard-demo: dev
	cd examples && ../$(BIN)/python dashboard_demo.py $(DEMO_ARGS)

# The Django example (docs/django.md): migrate, runserver and run_huey on SQLite, orders over HTTP.
django-demo: dev
	$(BIN)/python examples/django_project/demo.py

# The web examples (examples/flask_app, examples/fastapi_app): app + consumer over real HTTP.
flask-demo: dev
	cd examples && ../$(BIN)/python webdemo.py flask

fastapi-demo: dev
	cd examples && ../$(BIN)/python webdemo.py fastapi

test: dev
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Lint and types are part of green: .ci/run runs this before the tests.
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict huey_core/src/huey_core
	$(BIN)/mypy huey_memory/src huey_redis/src huey_sql/src huey_dashboard/src huey_django/src examples/example_backend/src
	$(BIN)/mypy examples/flask_app examples/fastapi_app examples/webdemo.py

clean:
	rm -rf $(VENV) build dist */build */dist

bench: dev
	$(BIN)/python bench/run.py
