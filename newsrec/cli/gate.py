"""The validation gate of the CLI commands that read data (`newsrec.data.validate`).

A refused input ends the command before any work: one line on stderr with the same
file:line reason as `newsrec data validate`, exit code 1, nothing written.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from newsrec.data.types import MindSplit
from newsrec.errors import DataError


def gate(
    command: str,
    data: Path | None = None,
    embeddings: Path | None = None,
    news: Sequence[Path] = (),
) -> dict[str, MindSplit]:
    """Refuse unusable `data` (a dataset root), `news` files, or an `embeddings` table
    that does not cover `data`'s news; raises typer.Exit(1) after one stderr line.
    Returns the splits of `data` it loaded, for the command to reuse."""
    from newsrec.data.validate import require_embeddings, require_usable, require_usable_news

    splits: dict[str, MindSplit] = {}
    try:
        if data is not None:
            require_usable(data, keep=splits)
        if news:
            require_usable_news(list(news))
        if embeddings is not None and data is not None:
            require_embeddings(embeddings, data, loaded=splits)
    except DataError as exc:
        print(f"newsrec {command}: not usable: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    return splits
