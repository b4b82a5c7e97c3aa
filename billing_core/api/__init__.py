"""The billing REST API (FastAPI): resources over the billing core's use cases.

Build the app with :func:`billing_core.api.app.create_app`; ``recoup api`` serves it with
uvicorn. This package's ``__init__`` imports nothing, so that the table modules and the command
line never pull in FastAPI by accident.
"""
