"""One progress bar for long work (training runs, ablation grids): rich, or nothing.

Examples:
    >>> with ProgressBar(False, total=3, label="cells") as bar:  # disabled: draws nothing
    ...     bar.update(advance=1, description="first")
"""

from __future__ import annotations

from typing import Any, Self

__all__ = ["ProgressBar"]


class ProgressBar:
    """A rich progress bar over ``total`` units of work, or nothing when not ``enabled``.

    ``count=True`` shows ``done/total`` (cells); otherwise a percentage (a budget's fraction).
    Descriptions are plain text: rich markup in them (a ``[`` in a spec) is escaped.
    """

    def __init__(self, enabled: bool, *, total: float, label: str, completed: float = 0, count: bool = False) -> None:
        self.enabled = enabled
        self.total, self.label, self.completed, self.count = total, label, completed, count
        self._progress: Any = None

    def __enter__(self) -> Self:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            amount = MofNCompleteColumn() if self.count else TextColumn("{task.percentage:>3.0f}%")
            self._progress = Progress(
                TextColumn("[bold]{task.fields[label]}"), BarColumn(), amount,
                TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.description}"),
            )  # fmt: skip
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total, completed=self.completed, label=self._escape(self.label))
        return self

    @staticmethod
    def _escape(text: str) -> str:
        from rich.markup import escape

        return escape(text)

    def update(self, *, completed: float | None = None, advance: float | None = None, description: str | None = None) -> None:
        """Move the bar to ``completed`` (or by ``advance``) and show ``description``."""
        if self._progress is None:
            return
        changes: dict[str, Any] = {}
        if completed is not None:
            changes["completed"] = completed
        if advance is not None:
            changes["advance"] = advance
        if description is not None:
            changes["description"] = self._escape(description)
        self._progress.update(self._task, **changes)

    def print(self, message: str) -> None:
        """A line above the bar (markup in ``message`` is rich's; escape what is not yours)."""
        if self._progress is not None:
            self._progress.console.print(message, highlight=False, soft_wrap=True)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
