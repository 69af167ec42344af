"""The ``ikrl`` command line (typer). Each command is a thin layer over the library:
:mod:`~ikrl.cli.components` (demo, list, check), :mod:`~ikrl.cli.training` (train, eval,
ablate, render) and :mod:`~ikrl.cli.solving` (solve), registered on :data:`app` here, in the
order ``ikrl --help`` lists them."""

# isort: skip_file
from __future__ import annotations

from ikrl.cli import components
from ikrl.cli import training
from ikrl.cli import solving
from ikrl.cli.base import app

__all__ = ["app"]

_COMMANDS = (components, training, solving)  # imported for their @command registrations
