"""The ``taoflow`` command line (typer + rich): see :mod:`taoflow.cli.app`."""

from taoflow.cli.app import app, main

__all__ = ["app", "main"]
