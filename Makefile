# The two commands a new machine needs: `make demo` and `make test`. Both set up .venv first.
# `make dashboard-demo` runs a consumer with the web dashboard on http://127.0.0.1:8765/.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: demo dashboard-demo django-demo flask-demo fastapi-demo test test-tz test-core-backends lint dev bench clean docs dists lowest mutate mutate-report

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

# Most tests wait on servers and subprocesses, so three pytest workers finish the suite in about
# half the time even on two cores; a file's tests stay on one worker (shared fixtures are built
# once). TEST_JOBS=0 runs everything in this one process.
# The run is measured with branch coverage across processes ([tool.coverage] in pyproject.toml):
# the table per module follows the tests, and consumer.py must keep 85% of its branches.
# COVERAGE=0 runs without it.
TEST_JOBS ?= 3
COVERAGE ?= 1
test: dev test-tz test-core-backends
ifeq ($(COVERAGE),1)
	rm -f .coverage .coverage.*
	status=0; \
	COVERAGE_FILE=$(CURDIR)/.coverage $(BIN)/coverage run -m pytest -q -n $(TEST_JOBS) \
		--dist loadfile $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/coverage combine -q; \
	$(BIN)/python tests/coverage_table.py huey_core/consumer.py=85 || [ $$status -ne 0 ] || status=1; \
	exit $$status
else
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)
endif

# The clock-dependent core and consumer tests again in a zone with a half-hour offset (India) and
# in one with daylight saving (New York): POSIX TZ strings, so no time-zone database is needed.
TZ_ZONES = IST-5:30 EST5EDT,M3.2.0,M11.1.0
TZ_SELECT = periodic or crontab or delay or eta or schedule or utc or local or expire
test-tz: dev
	for zone in $(TZ_ZONES); do \
		TZ=$$zone $(BIN)/python -m pytest -q -p no:cacheprovider tests/core tests/consumer \
			-k "$(TZ_SELECT)" || exit 1; \
	done

# tests/core again on Redis and SQLite, through the switch in tests/core/helpers.py.
test-core-backends: dev
	HUEY_CORE_TEST_BACKEND=redis HUEY_CORE_TEST_URL=redis://127.0.0.1:6379/0 \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/core
	rm -f .core-tests.db*
	HUEY_CORE_TEST_BACKEND=sql HUEY_CORE_TEST_URL=sqlite:///$(CURDIR)/.core-tests.db \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/core
	rm -f .core-tests.db*

# Lint and types are part of green: .ci/run runs this before the tests.
lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict huey_core/src/huey_core
	$(BIN)/mypy huey_memory/src huey_redis/src huey_sql/src huey_dashboard/src huey_django/src examples/example_backend/src
	$(BIN)/mypy examples/flask_app examples/fastapi_app examples/webdemo.py

# The documentation site, strict: a broken link or anchor, a page missing from nav, or a
# docstring mkdocstrings cannot render fails (docs/contributing.md).
docs: dev
	$(BIN)/mkdocs build --strict --site-dir site

# Wheels and sdists of the four distributions in dist/, checked as an index would.
DISTS = huey_core huey_memory huey_redis huey_sql huey_dashboard huey_django
dists: dev
	rm -rf dist && mkdir -p dist
	for d in $(DISTS); do $(BIN)/python -m build -q --outdir dist $$d || exit 1; done
	$(BIN)/twine check --strict dist/*

# The dependency-facing tests on the LOWEST version of every declared dependency, in a venv of
# their own (.venv-lowest): a minimum in a pyproject.toml that is not true fails here. Chosen to
# touch each dependency's API in about two minutes: click (the CLI tests run in process),
# pluggy (discovery, hookspecs, backend selection), redis-py (huey_redis/tests, with the
# conformance suite, i.e. the [testing] extra's pytest and hypothesis), SQLAlchemy with psycopg
# and PyMySQL (the tests run on SQLite, PostgreSQL and MariaDB alike, and every URL form).
# The rest of the suite drives these same calls through consumers and takes far longer.
LOWEST = .venv-lowest
LOWEST_TESTS = tests/cli/test_cli_commands.py tests/cli/test_cli_inspect.py \
	tests/plugins/test_discovery.py tests/plugins/test_hookspecs.py \
	tests/plugins/test_selection.py tests/plugins/test_missing_backends.py \
	huey_redis/tests huey_sql/tests/test_sql_dialects.py huey_sql/tests/test_sql_urls.py
lowest: dev
	rm -rf $(LOWEST)
	$(BIN)/uv venv -q --python $(PY) $(LOWEST)
	VIRTUAL_ENV=$(LOWEST) $(BIN)/uv pip install -q --resolution lowest-direct \
		-e "huey_core[testing]" -e huey_memory -e "huey_redis[hiredis,testing]" \
		-e "huey_sql[postgres,mysql,testing]" -e examples/example_backend "pytest-timeout>=2.3"
	VIRTUAL_ENV=$(LOWEST) $(BIN)/uv pip list | grep -iE '^(click|pluggy|redis|hiredis|sqlalchemy|psycopg|pymysql|pytest|hypothesis) '
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS) $(PYTEST_ARGS)

# Mutation testing of the core's behaviour modules (docs/contributing.md; not part of .ci/run).
# mutmut mutates only under ./src, so .mutation/ holds src -> huey_core/src, the fast tests
# (tests/core, tests/consumer, memory backend) and tests/mutation/pyproject.toml, its config.
# MUTATE picks mutants by name prefix: `make mutate MUTATE="huey_core.locks huey_core.retries"`
# runs two modules. Results
# accumulate in .mutation/mutants across runs; the modules named are judged afresh (mutmut
# re-runs every mutant named), the others keep their results. `rm -rf .mutation` starts afresh. The report fails on a survivor SURVIVORS.md does not explain.
MUTATE ?= huey_core
# One mutant at a time by default: mutmut otherwise forks one child per core, which starves
# anything else on a small machine. `make mutate MUTATE_JOBS=4` on a bigger one.
MUTATE_JOBS ?= 1
mutate: dev
	rm -rf .mutation/src .mutation/tests .mutation/pyproject.toml
	mkdir -p .mutation/tests
	cp tests/mutation/pyproject.toml .mutation/pyproject.toml
	ln -s ../huey_core/src .mutation/src
	cp tests/__init__.py .mutation/tests/
	ln -s ../../tests/core .mutation/tests/core
	ln -s ../../tests/consumer .mutation/tests/consumer
	cd .mutation && nice -n 10 ../$(BIN)/mutmut run --max-children $(MUTATE_JOBS) $(foreach m,$(MUTATE),"$(m)*") > mutmut.log 2>&1 || (tail -20 mutmut.log; exit 1)
	$(MAKE) --no-print-directory mutate-report

mutate-report:
	cd .mutation && ../$(BIN)/python ../tests/mutation/report.py

clean:
	rm -rf $(VENV) $(LOWEST) build dist site */build */dist .mutation

bench: dev
	$(BIN)/python bench/run.py
