"""A small Flask app that hands work to huey (docs/flask.md): `make flask-demo` runs it."""
