"""Any bytes in a MIND file: the readers return rows and BadRows naming file:line, or raise
one DataError naming the file; never another exception (hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsrec.data.reader import read_behaviors, read_news, read_vectors
from newsrec.errors import DataError

NEWS_ROW = "N1\tsports\tsoccer\tTitle\tAbstract\thttp://x\t[]\t[]\n"
BEHAVIOR_ROW = "1\tU1\t11/15/2019 8:55:22 AM\tN1 N2\tN3-1 N4-0\n"
VEC_ROW = "Q1\t" + "\t".join(["0.5"] * 100) + "\n"

# Mostly near-valid text with hostile pieces spliced in, plus raw bytes.
_PIECES = st.sampled_from(
    [
        "\t",
        "\n",
        "\r\n",
        "\r",
        "\x00",
        "\ufeff",
        "[",
        "]",
        '{"WikidataId": 1}',
        "-1",
        "-x",
        " ",
        "NaN",
        "1e999",
    ]
)


def _mutated(valid: str) -> st.SearchStrategy[bytes]:
    text = st.lists(st.one_of(st.just(valid), _PIECES, st.text(max_size=20)), max_size=12).map("".join)
    encoded = text.map(lambda s: s.encode("utf-8", "surrogatepass"))
    return st.one_of(
        encoded, st.binary(max_size=400), st.tuples(encoded, st.binary(max_size=20)).map(b"".join)
    )


def _check(reader: object, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.tsv"
        path.write_bytes(data)
        try:
            rows, bad = reader(path)  # type: ignore[operator]
        except DataError as exc:
            assert str(path) in str(exc), exc
            return
        n_lines = max(1, data.count(b"\n") + data.count(b"\r") + 1)
        for row in bad:
            assert Path(row.file) == path and 1 <= row.line <= n_lines, row
            assert row.reason and isinstance(row.detail, str)
        assert isinstance(rows, list | dict)


_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_mutated(NEWS_ROW))
def test_news_reader_never_raises_another_exception(data: bytes) -> None:
    _check(read_news, data)


@_SETTINGS
@given(_mutated(BEHAVIOR_ROW))
def test_behaviors_reader_never_raises_another_exception(data: bytes) -> None:
    _check(read_behaviors, data)


@_SETTINGS
@given(_mutated(VEC_ROW))
def test_vector_reader_never_raises_another_exception(data: bytes) -> None:
    _check(read_vectors, data)
