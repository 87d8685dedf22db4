"""Settings of the example shop (docs/django.md).

The database comes from the environment, so the same project runs on SQLite (the default, what
`make django-demo` uses) and on PostgreSQL (the tests): SHOP_DB=postgresql with SHOP_DB_NAME,
SHOP_DB_USER, SHOP_DB_PASSWORD, SHOP_DB_HOST, SHOP_DB_PORT (and SHOP_APP_NAME, the
application_name its connections show in pg_stat_activity).
"""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-the-example")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["huey_django", "orders"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "shopsite.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# CONN_MAX_AGE 0 (Django's default) closes a connection after each request, and db_task after
# each task; "none" keeps them open (persistent), CONN_HEALTH_CHECKS then tests each one first.
_max_age = os.environ.get("SHOP_CONN_MAX_AGE", "0")
CONN_MAX_AGE = None if _max_age == "none" else int(_max_age)

if os.environ.get("SHOP_DB") == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ["SHOP_DB_NAME"],
            "USER": os.environ.get("SHOP_DB_USER", "postgres"),
            "PASSWORD": os.environ.get("SHOP_DB_PASSWORD", ""),
            "HOST": os.environ.get("SHOP_DB_HOST", "127.0.0.1"),
            "PORT": os.environ.get("SHOP_DB_PORT", "5432"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {"application_name": os.environ.get("SHOP_APP_NAME", "shop")},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SHOP_DB_NAME", BASE_DIR / "db.sqlite3"),
            "CONN_MAX_AGE": CONN_MAX_AGE,
            # Web requests and the consumer write to one file: wait for the write lock instead
            # of failing with "database is locked" (transaction_mode needs Django 5.1).
            "OPTIONS": {"timeout": 20}
            | ({"transaction_mode": "IMMEDIATE"} if django.VERSION >= (5, 1) else {}),
        }
    }

HUEY = {
    "name": os.environ.get("SHOP_HUEY_NAME", "shop"),
    "database": "default",  # the queue lives in the project's own database
    # "immediate" is left to follow DEBUG: with DJANGO_DEBUG=1 tasks run inside the request
    "consumer": {"workers": 2, "scheduler_interval": 0.5},
}
