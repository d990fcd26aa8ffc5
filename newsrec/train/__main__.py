"""`python -m newsrec.train ...`: the `newsrec train` command, for launchers that run a
module on every process, e.g. `torchrun --nproc_per_node 2 -m newsrec.train --data ...`
(training on several processes: newsrec.train.distributed)."""

from __future__ import annotations

import typer

from newsrec.cli.model_cmd import train


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train)
    app()


if __name__ == "__main__":
    main()
