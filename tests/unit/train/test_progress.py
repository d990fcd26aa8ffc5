"""Progress bars draw on a terminal only (issue 15, defect 9: 48 '\\r' frames for 16 batches in a log)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from newsrec.progress import is_terminal, progress_bar

NEWSREC = Path(__file__).resolve().parents[3] / "newsrec"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_silent_on_a_redirected_stream_and_draws_on_a_terminal() -> None:
    log = io.StringIO()
    assert list(progress_bar(range(16), desc="epoch 1", file=log)) == list(range(16))
    assert log.getvalue() == ""
    tty = _Tty()
    list(progress_bar(range(16), desc="epoch 1", file=tty, mininterval=0))
    assert "\r" in tty.getvalue() and "16/16" in tty.getvalue()
    quiet = _Tty()
    list(progress_bar(range(16), file=quiet, enabled=False))
    assert quiet.getvalue() == ""


def test_a_process_with_stderr_redirected_writes_no_frames() -> None:
    code = "from newsrec.progress import progress_bar\nfor _ in progress_bar(range(16), desc='epoch 1'): pass"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "\r" not in res.stderr and res.stderr == ""


def test_closed_or_odd_streams_count_as_no_terminal() -> None:
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(None)


def test_every_bar_in_newsrec_goes_through_the_helper() -> None:
    users = [
        p.relative_to(NEWSREC).as_posix()
        for p in NEWSREC.rglob("*.py")
        if re.search(r"^\s*(from tqdm|import tqdm)", p.read_text(), re.M) and p.name != "progress.py"
    ]
    assert users == []
