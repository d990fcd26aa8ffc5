"""Stable A/B assignment: sha256(salt:user) -> one of 10000 buckets -> variant by weight.

Never Python's `hash` (salted per process): the same user lands in the same variant in
every process and after every restart, as long as salt and weights stay the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from services.config import VariantConfig

BUCKETS = 10_000


def bucket(salt: str, user_id: str) -> int:
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(variants: Sequence[VariantConfig], salt: str, user_id: str) -> VariantConfig:
    """The variant whose cumulative weight range holds the user's bucket."""
    total = sum(v.weight for v in variants)
    b = bucket(salt, user_id)
    upper = 0.0
    for v in variants:
        upper += v.weight / total * BUCKETS
        if b < upper:
            return v
    return [v for v in variants if v.weight > 0][-1]  # float rounding at the very top
