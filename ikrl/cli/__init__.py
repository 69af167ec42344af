"""The ``ikrl`` command line: thin commands over the library, one error handler."""

from __future__ import annotations

from ikrl.cli.app import app

__all__ = ["app"]
