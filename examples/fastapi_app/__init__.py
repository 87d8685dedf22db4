"""A small FastAPI app that hands work to huey (docs/fastapi.md): `make fastapi-demo` runs it."""
