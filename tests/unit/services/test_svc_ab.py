from __future__ import annotations

import hashlib
from collections import Counter

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


def test_bucket_is_stable_across_processes() -> None:
    # fixed value: sha256 based, not Python's per-process salted hash()
    assert bucket("newsrec-ab-v1", "U1") == bucket("newsrec-ab-v1", "U1")
    assert 0 <= bucket("x", "y") < 10_000
    expected = int.from_bytes(hashlib.sha256(b"s:U1").digest()[:8], "big") % 10_000
    assert bucket("s", "U1") == expected


def test_zero_weight_variant_is_never_chosen() -> None:
    variants = _variants(0, 1)
    assert {assign(variants, "s", f"U{i}").name for i in range(300)} == {"v1"}
