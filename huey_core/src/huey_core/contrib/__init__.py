"""huey.contrib's helpers, under the same module names (huey_core.contrib.sql_huey, ...)."""
