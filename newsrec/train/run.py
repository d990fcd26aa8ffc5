"""A complete training run (towers, then ranker) committed as one unit.

`newsrec train` writes the towers and the ranker into one staging directory next to the
run directory and swaps it into place only after both finished: a run killed at any
stage leaves the previous run intact and loadable, never new towers beside an old ranker.

On several processes (torchrun) the ranks train the towers together; rank 0 alone
writes, trains the ranker and commits, while the others return after the towers.
"""

from __future__ import annotations

from newsrec.atomic import StagedDir
from newsrec.data.types import MindSplit
from newsrec.models.export import seal_serving
from newsrec.train.config import RankerConfig, RankerResult, TrainConfig, TrainResult
from newsrec.train.distributed import current_world
from newsrec.train.prepare import Inputs
from newsrec.train.ranker import train_ranker
from newsrec.train.two_tower import RUN_FILES, train_two_tower


def train_run(
    config: TrainConfig,
    ranker: RankerConfig | None = None,
    inputs: Inputs | None = None,
    splits: dict[str, MindSplit] | None = None,
) -> tuple[TrainResult, RankerResult | None]:
    """Train the towers and (with `ranker`) the ranker into `config.out`, atomically.
    `splits` (the dataset, already loaded by a validation gate) spare the ranker a load.
    A rank other than 0 returns (its towers' result, None) and writes nothing."""
    if not current_world().is_main:
        return train_two_tower(config, inputs), None
    with StagedDir(config.out, owned=RUN_FILES) as stage:
        result = train_two_tower(config, inputs, workdir=stage.path)
        splits = inputs.splits if inputs is not None else splits or None
        rank = train_ranker(ranker, splits, workdir=stage.path) if ranker is not None else None
        seal_serving(stage.path / "serving")  # covers files any stage added after export
        stage.commit()
    return result, rank
