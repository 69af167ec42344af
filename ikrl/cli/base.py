"""The ``ikrl`` application, its console and its one error handler (``command``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ikrl.errors import DestinationError, IkrlError
from ikrl.util.files import check_destination, unused_path

__all__ = ["app", "command", "console", "result_path"]

app = typer.Typer(
    help="ikrl: inverse kinematics as reinforcement learning, for any robot arm.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # an error stays on one line, however narrow the terminal


@app.callback()
def main() -> None:
    """ikrl: inverse kinematics as reinforcement learning, for any robot arm."""


def _fail(error: Exception | str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {error}", highlight=False)
    return typer.Exit(code=1)


def command(name: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``@app.command`` with the one error handler: an :class:`IkrlError` becomes a one-line
    message and exit code 1, never a traceback."""

    def decorate(function: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> None:
            try:
                function(*args, **kwargs)
            except IkrlError as error:
                raise _fail(error) from None

        return app.command(name)(run)

    return decorate


def result_path(out: Path | None, default: str, *, overwrite: bool = False, folder: Path = Path(".")) -> Path:
    """Where a command writes its result, checked before any work: ``out``, or ``default``
    (``"solutions.csv"``) in ``folder`` under a name no file has yet (``solutions-2.csv``...).
    An existing ``out`` is refused unless ``overwrite``: a result never replaces another silently."""
    if out is None:
        stem, dot, suffix = default.rpartition(".")
        out = unused_path(folder, stem, dot + suffix)
    elif out.exists() and not out.is_dir() and not overwrite:
        raise DestinationError(f"--out {out} exists: ikrl never overwrites a result; give another path, remove it, or pass --overwrite")
    return check_destination(out)
