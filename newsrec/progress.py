"""The one progress-bar constructor of the project.

A bar redraws itself with carriage returns: useful on a terminal, noise in a redirected
log (48 `\\r` frames for 16 batches). `progress_bar` draws only when its stream is a
terminal and the caller wants progress; every bar in `newsrec/` is made here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def is_terminal(stream: IO[str] | None) -> bool:
    """True when `stream` is an interactive terminal (not a file, pipe or closed stream)."""
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def progress_bar(
    iterable: Iterable[T] | None = None, *, enabled: bool = True, file: IO[str] | None = None, **kw: Any
) -> tqdm[T]:
    """A tqdm bar on `file` (default stderr), silent unless `enabled` and `file` is a terminal."""
    stream = file if file is not None else sys.stderr
    return tqdm(iterable, file=stream, disable=not (enabled and is_terminal(stream)), **kw)
