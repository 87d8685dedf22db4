"""`python -m huey_core.cli ...` is the `huey` command."""

from huey_core.cli import main

main()
