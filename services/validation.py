"""Request checks shared by the services: each failure is an `InvalidInput` naming the field."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from newsrec.errors import InvalidInput, NewsrecError
from services.config import MAX_HISTORY, MAX_K

MAX_ID_LEN = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


_ASCII_CONTROL = bytes(range(0x20)) + b"\x7f"


def _has_control(text: str) -> bool:
    """Whether `text` holds a Unicode Cc character. ASCII text (every id in practice) is
    checked as bytes in one C pass, ~7x faster than the regex (200 ids: 8 vs 53 us)."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, _ASCII_CONTROL)) != len(data)
    return _CONTROL.search(text) is not None


def check_user_id(user_id: str) -> None:
    if not user_id.strip():
        raise InvalidInput("user_id: must not be empty")
    if len(user_id) > MAX_ID_LEN:
        raise InvalidInput(f"user_id: at most {MAX_ID_LEN} characters, got {len(user_id)}")
    check_no_control(user_id, "user_id")


def check_no_control(value: str, field: str) -> None:
    """No control character (Unicode Cc: NUL, tab, newline, ...): none belongs in an id or a
    title, a NUL breaks Milvus Lite, and a tab or newline breaks the TSV files ids end up in."""
    bad = _CONTROL.search(value)
    if bad is not None:
        raise InvalidInput(f"{field}: control character U+{ord(bad.group()):04X} is not allowed")


def check_k(k: int, field: str = "k") -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"{field}: must be between 1 and {MAX_K}, got {k}")


def check_ids(ids: Sequence[str], field: str, limit: int = MAX_HISTORY) -> list[str]:
    """The ids as a list, checked. Use the list afterwards: every read of a protobuf
    repeated string field builds new Python strings (a Rank call carries a few hundred)."""
    if len(ids) > limit:
        raise InvalidInput(f"{field}: at most {limit} ids, got {len(ids)}")
    ids = list(ids)
    # Two C-level passes first; the loop that names the bad entry only runs when there is one.
    if ids and (min(map(len, ids)) == 0 or max(map(len, ids)) > MAX_ID_LEN):
        for i, news_id in enumerate(ids):
            if not news_id or len(news_id) > MAX_ID_LEN:
                raise InvalidInput(f"{field}[{i}]: news ids must be 1..{MAX_ID_LEN} characters")
    # One pass over all ids joined; the loop naming the entry only runs on a hit.
    if ids and _has_control("".join(ids)):
        for i, news_id in enumerate(ids):
            check_no_control(news_id, f"{field}[{i}]")
    return ids


def check_key(value: str, field: str, *, required: bool = True, limit: int = MAX_ID_LEN) -> None:
    """An id-like string that is stored (a Milvus VARCHAR) or looked up: non-blank unless not
    `required`, at most `limit` UTF-8 bytes (Milvus counts bytes), no control characters
    (a NUL breaks Milvus Lite's upsert; none belongs in an id or a TSV field)."""
    if required and not value.strip():
        raise InvalidInput(f"{field}: must not be empty")
    size = len(value.encode())
    if size > limit:
        raise InvalidInput(f"{field}: at most {limit} bytes of UTF-8, got {size}")
    check_no_control(value, field)


def check_vector(values: Sequence[float], dim: int, field: str = "vector") -> np.ndarray:
    """Return the vector as float32 (dim,), or explain what is wrong with it."""
    vec = np.asarray(values, dtype=np.float32)
    if vec.shape != (dim,):
        raise InvalidInput(f"{field}: expected {dim} floats (the served model's dimension), got {vec.size}")
    if not np.isfinite(vec).all():
        raise InvalidInput(f"{field}: contains NaN or infinity")
    # Finite values can still overflow every score (3e38 squared is inf, inf - inf NaN):
    # the squared norm must be finite in float32, the precision scores are computed in.
    with np.errstate(over="ignore"):
        if not np.isfinite(np.dot(vec, vec)):
            raise InvalidInput(f"{field}: values too large (the vector's norm overflows float32)")
    return vec


def check_scores(scores: Sequence[float] | np.ndarray, what: str) -> None:
    """Scores from the model or index must be finite: a NaN would sort anywhere and is not
    JSON. Only a broken artifact or index gets here (inputs are checked before)."""
    if not np.isfinite(np.asarray(scores, dtype=np.float64)).all():
        raise NonFiniteResult(f"{what} produced non-finite scores; refusing to answer with them")


class NonFiniteResult(NewsrecError):
    """A model or index returned NaN/inf for valid input: an internal fault, reported as such."""

    grpc_code = "INTERNAL"
