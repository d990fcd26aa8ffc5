from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from services.ab import assign, bucket
from services.config import VariantConfig


def _variants(*weights: float) -> list[VariantConfig]:
    return [
        VariantConfig(name=f"v{i}", weight=w, user_encoder="u", retrieval="r", ranker="k")
        for i, w in enumerate(weights)
    ]


def test_split_follows_weights_over_2000_users() -> None:
    variants = _variants(90, 10)
    counts = Counter(assign(variants, "salt", f"U{i}").name for i in range(2000))
    # binomial sd at p=0.1, n=2000 is ~13 users; allow ~4 sd
    assert abs(counts["v1"] - 200) <= 55, counts


def test_same_user_same_variant_and_salt_reshuffles() -> None:
    variants = _variants(50, 50)
    first = [assign(variants, "s", f"U{i}").name for i in range(500)]
    assert first == [assign(variants, "s", f"U{i}").name for i in range(500)]
    other = [assign(variants, "s2", f"U{i}").name for i in range(500)]
    assert first != other


_USERS = ["U1", "U2", "user-\u00e9", ""]
_IN_CHILD = (
    "import json; from services.ab import bucket; "
    f"print(json.dumps([hash('U1'), [bucket('newsrec-ab-v1', u) for u in {_USERS!r}]]))"
)


def _child(hash_seed: str) -> tuple[int, list[int]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", _IN_CHILD],
        env=env,
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    py_hash, buckets = json.loads(out.stdout)
    return int(py_hash), [int(b) for b in buckets]


def test_bucket_is_stable_across_processes() -> None:
    """Two fresh interpreters with different hash seeds put every user in the same bucket
    as this process: sha256 based, not Python's per-process salted hash()."""
    here = [bucket("newsrec-ab-v1", u) for u in _USERS]
    hash_1, buckets_1 = _child("1")
    hash_2, buckets_2 = _child("2")
    assert hash_1 != hash_2, "the children must really differ in their str hashing"
    assert buckets_1 == buckets_2 == here
    assert all(0 <= b < 10_000 for b in here)
    expected = int.from_bytes(hashlib.sha256(b"s:U1").digest()[:8], "big") % 10_000
    assert bucket("s", "U1") == expected


def test_zero_weight_variant_is_never_chosen() -> None:
    variants = _variants(0, 1)
    assert {assign(variants, "s", f"U{i}").name for i in range(300)} == {"v1"}
