"""Synthetic data generation streams the log to disk: memory does not grow with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from newsrec.data.reader import parse_time
from newsrec.data.synth import SIZES

# `tiny`'s world (500 users, 600 news) with N train impressions: the world is fixed,
# so what grows with N is only what is kept of the log.
_GEN = """
import dataclasses, resource, sys
from newsrec.data import synth
n = int(sys.argv[1])
synth.SIZES["long"] = dataclasses.replace(synth.SIZES["tiny"], train_impressions=n, dev_impressions=n // 4)
s = synth.generate("long", 7, sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, s.impressions["train"])
"""


def _peak_mb(n: int, out: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _GEN, str(n), str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rss, impressions = map(int, done.stdout.split())
    assert impressions == n
    return rss


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    """10x the impressions in the same world: peak RSS within 30 MB (the generator that
    kept the log in memory until the end grew by ~170 MB here: 114 MB at 20k, 446 MB
    at 200k impressions), and the behaviors file is the whole, time-sorted log."""
    small, big = _peak_mb(10_000, tmp_path / "a"), _peak_mb(100_000, tmp_path / "b")
    assert big - small < 30, (small, big)
    lines = (tmp_path / "b" / "train" / "behaviors.tsv").read_text().splitlines()
    assert len(lines) == 100_000
    assert [int(x.split("\t")[0]) for x in lines[:3]] == [1, 2, 3]
    times = [x.split("\t")[2] for x in lines[:5000]]
    assert [parse_time(t) for t in times] == sorted(parse_time(t) for t in times)


def test_large_has_mind_large_shape() -> None:
    cfg = SIZES["large"]
    assert cfg.n_users >= 1_000_000 and cfg.n_news >= 160_000
    assert cfg.train_impressions >= 2_200_000 and cfg.dev_impressions >= 376_000
