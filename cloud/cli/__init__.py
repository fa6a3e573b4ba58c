"""The ``linewatch`` command line."""

from cloud.cli.app import app, main

__all__ = ["app", "main"]
