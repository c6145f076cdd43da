"""Progress bars for steps that can take more than a few seconds, quiet when nobody is watching.

Generative-model training, explainer batches, feature extraction and tuning grids wrap their loops in
`progress(...)`. On a terminal (stderr is a TTY) a rich bar shows what runs and how far it is; in CI, in
a log file or under a sweep launcher the loop runs with no output at all, so logs stay readable.
`TRUSTBENCH_PROGRESS=1` forces the bars on, `=0` off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")


def bars_enabled() -> bool:
    """Whether progress bars are shown: the environment's choice, else whether stderr is a terminal."""
    forced = os.environ.get("TRUSTBENCH_PROGRESS")
    if forced is not None:
        return forced not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def progress(items: Iterable[Item], description: str, total: int | None = None) -> Iterator[Item]:
    """Yield `items`, showing a bar named `description` on stderr when bars are enabled."""
    if not bars_enabled():
        yield from items
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    # Bars are on only on a terminal or when forced: drawn as on a terminal either way (rich draws nothing
    # on a stream it does not take for a terminal, which would make TRUSTBENCH_PROGRESS=1 a no-op).
    console = Console(stderr=True, force_terminal=True)
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
