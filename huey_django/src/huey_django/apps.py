"""The Django app: "huey_django" in INSTALLED_APPS gives `manage.py run_huey` and task discovery."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

from huey_core import Huey
from huey_django.config import settings_dict


class HueyConfig(AppConfig):
    name = "huey_django"
    verbose_name = "huey"

    def ready(self) -> None:
        # Every process imports each app's tasks module, the consumer above all: a task it has
        # not imported is an unknown task, and a periodic task it has not imported never runs.
        config = settings_dict()
        if not isinstance(config, Huey) and not config.get("autodiscover", True):
            return
        autodiscover_modules("tasks")
