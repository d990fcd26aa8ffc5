"""bench/sampled_negatives.py: 1 click + N catalogue negatives published before the impression."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from fixtures_synth import tiny_dataset  # tests/ is on sys.path through tests/conftest.py

from newsrec.data import load_dataset
from newsrec.data.dataset import first_seen
from newsrec.data.validate import validate_dataset

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "sampled_negatives.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sampled_negatives", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_dataset_rewritten_validates_and_keeps_the_rules(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    src = tiny_dataset(tmp_path_factory)
    mod = _module()
    mod.main(["--src", str(src), "--out", str(tmp_path / "a"), "--negatives", "19", "--seed", "3"])
    assert validate_dataset(tmp_path / "a").usable
    before, after = load_dataset(src), load_dataset(tmp_path / "a")
    published = first_seen(before)
    for name in ("train", "dev"):
        assert (tmp_path / "a" / name / "news.tsv").read_bytes() == (src / name / "news.tsv").read_bytes()
        orig = {i.impression_id: i for i in before[name].impressions}
        clicks = sum(sum(i.labels) for i in orig.values())
        imps = after[name].impressions
        assert 0.9 * clicks <= len(imps) <= clicks
        for imp in imps:
            parent = orig[imp.impression_id.rsplit("-", 1)[0]]
            assert len(imp.candidates) == 20 and sum(imp.labels) == 1
            assert imp.user_id == parent.user_id and imp.time == parent.time
            assert imp.history == parent.history
            click = imp.candidates[imp.labels.index(1)]
            assert click in {c for c, y in zip(parent.candidates, parent.labels, strict=True) if y}
            negs = [c for c, y in zip(imp.candidates, imp.labels, strict=True) if not y]
            assert len(set(negs)) == 19 and click not in negs and not set(negs) & set(imp.history)
            assert all(published[n] < imp.time and n in before[name].news for n in negs)
    # same seed, same bytes; another seed, other negatives
    mod.main(["--src", str(src), "--out", str(tmp_path / "b"), "--negatives", "19", "--seed", "3"])
    mod.main(["--src", str(src), "--out", str(tmp_path / "c"), "--negatives", "19", "--seed", "4"])
    beh = "dev/behaviors.tsv"
    assert (tmp_path / "a" / beh).read_bytes() == (tmp_path / "b" / beh).read_bytes()
    assert (tmp_path / "a" / beh).read_bytes() != (tmp_path / "c" / beh).read_bytes()


def _write(root: Path, behaviors: list[str], news: list[str]) -> None:
    d = root / "train"
    d.mkdir(parents=True)
    d.joinpath("news.tsv").write_text(
        "".join(f"{n}\tnews\tsub\tTitle {n}\tAbstract\thttp://x/{n}\t[]\t[]\n" for n in news)
    )
    d.joinpath("behaviors.tsv").write_text("".join(behaviors))


def test_only_earlier_articles_and_too_few_are_dropped(tmp_path: Path) -> None:
    # N1..N4 first appear at 8 AM, N5 at 10 AM. The 10 AM impression (history N1 N4)
    # clicks N5 and N2: for N5 the eligible negatives are exactly {N2, N3}; for N2 only
    # {N3} (fewer than 2: dropped). Nothing was published before 8 AM: impression 1 drops.
    news = [f"N{i}" for i in range(1, 6)]
    _write(
        tmp_path / "src",
        [
            "1\tu1\t11/15/2019 8:00:00 AM\t\tN1-0 N2-1 N3-0 N4-0\n",
            "2\tu2\t11/15/2019 10:00:00 AM\tN1 N4\tN5-1 N2-1 N3-0\n",
        ],
        news,
    )
    mod = _module()
    out = tmp_path / "out"
    mod.main(["--src", str(tmp_path / "src"), "--out", str(out), "--negatives", "2", "--seed", "0"])
    imps = {i.impression_id: i for i in load_dataset(out)["train"].impressions}
    assert set(imps) == {"2-0"}
    imp = imps["2-0"]
    assert sorted(imp.candidates) == ["N2", "N3", "N5"] and imp.labels[imp.candidates.index("N5")] == 1
    assert imp.history == ["N1", "N4"] and sum(imp.labels) == 1
