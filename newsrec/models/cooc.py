"""Co-click item model: each article as the set of users who clicked it.

Built from the impressions it is given (train histories, one per user, plus the clicked
train candidates), so the ranker's training features can be built from the past only.
Rows are L2-normalised, so `X[a] . X[b]` is the cosine of two articles' co-click
vectors (item-kNN). A truncated SVD of the same matrix gives item factors `F = U S`
(`F F^T` is the best rank-k approximation of the cosine matrix); a user is folded in as
the mean of their history's factors and a candidate scores `F[c] . mean(F[hist])`: a
smoothed item-kNN that also links articles no user clicked together.

Recency-weighted popularity: click counts decayed by age, `sum exp(-(t - t_click) / tau)`
over clicks strictly before `t` (`decayed_clicks`, exact for any mix of click and query
times; `RecencyState` for serving, where every known click precedes the request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file
from scipy.sparse.linalg import svds

from newsrec.data.types import Impression

RECENCY_TAU_HOURS = 24.0


@dataclass
class CoClick:
    """(N items, U users) CSR, rows L2-normalised; `factors` (N, k) item factors or None."""

    matrix: sp.csr_matrix
    factors: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[0])

    def knn_scores(self, hist_rows: np.ndarray, cand_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, max) cosine of each candidate's co-click vector with the history's.
        Rows < 0 or beyond the matrix (articles added after the build) score 0."""
        c = len(cand_rows)
        h = self._valid(hist_rows)
        h = h[h >= 0]
        if len(h) == 0 or c == 0:
            return np.zeros(c, np.float32), np.zeros(c, np.float32)
        sims = self.cosines(self._valid(cand_rows), h)
        return sims.mean(1), sims.max(1)

    def cosines(self, a_rows: np.ndarray, b_rows: np.ndarray) -> np.ndarray:
        """(len(a), len(b)) float32 `X[a] . X[b]`; rows < 0 give zero rows. Plain numpy over
        the CSR arrays: scipy's fancy indexing + product cost ~1 ms of wrapper overhead per
        request, this is a few vectorised calls over the matched (user) entries."""
        m = self.matrix
        a_ok = a_rows >= 0
        a_ent, a_of = _entries(m.indptr, np.where(a_ok, a_rows, 0), a_ok)
        b_ent, b_of = _entries(m.indptr, b_rows, np.ones(len(b_rows), bool))
        out = np.zeros(len(a_rows) * len(b_rows), np.float64)
        if len(a_ent) and len(b_ent):
            b_user = m.indices[b_ent]
            order = np.argsort(b_user, kind="stable")
            b_sorted = b_user[order]
            a_user = m.indices[a_ent]
            lo = np.searchsorted(b_sorted, a_user, "left")
            cnt = np.searchsorted(b_sorted, a_user, "right") - lo
            total = int(cnt.sum())
            if total:
                ai = np.repeat(np.arange(len(a_ent)), cnt)
                bj = order[np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt) + np.arange(total)]
                w = m.data[a_ent[ai]].astype(np.float64) * m.data[b_ent[bj]]
                flat = a_of[ai] * len(b_rows) + b_of[bj]
                out = np.bincount(flat, weights=w, minlength=len(out)).astype(np.float64)
        return out.reshape(len(a_rows), len(b_rows)).astype(np.float32)

    def knn_mean(self, hist_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """Mean cosine with the history, `X[c] . mean(X[hist])`, exactly as `knn_scores`'s
        mean but in time linear in the candidates' entries (the serving path: the pairwise
        max costs as many products as users shared by candidates and history)."""
        c = len(cand_rows)
        h = self._valid(hist_rows)
        h = h[h >= 0]
        if len(h) == 0 or c == 0:
            return np.zeros(c, np.float32)
        m = self.matrix
        h_ent, _ = _entries(m.indptr, h, np.ones(len(h), bool))
        q = np.bincount(m.indices[h_ent], weights=m.data[h_ent], minlength=m.shape[1]) / len(h)
        cr = self._valid(cand_rows)
        ok = cr >= 0
        c_ent, owner = _entries(m.indptr, np.where(ok, cr, 0), ok)
        w = m.data[c_ent] * q[m.indices[c_ent]]
        return np.bincount(owner, weights=w, minlength=c).astype(np.float32)

    def mf_max(self, hist_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """Closest history article in the factor space, `max_h F[c] . F[h]` (the low-rank
        stand-in for item-kNN's max: a dense product instead of per-user pairs)."""
        c = len(cand_rows)
        h = self._valid(hist_rows)
        h = h[h >= 0]
        if self.factors is None or len(h) == 0:
            return np.zeros(c, np.float32)
        cr = self._valid(cand_rows)
        ok = cr >= 0
        sims = self.factors[np.where(ok, cr, 0)] @ self.factors[h].T
        return (sims.max(1) * ok).astype(np.float32)

    def mf_scores(self, hist_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """Factorisation score `F[c] . mean(F[hist])`; zeros without factors or history."""
        c = len(cand_rows)
        h = self._valid(hist_rows)
        h = h[h >= 0]
        if self.factors is None or len(h) == 0:
            return np.zeros(c, np.float32)
        cr = self._valid(cand_rows)
        ok = cr >= 0
        user = self.factors[h].mean(0)
        return ((self.factors[np.where(ok, cr, 0)] @ user) * ok).astype(np.float32)

    def _valid(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        return np.where(rows < self.n_items, rows, -1)

    def save(self, path: Path) -> None:
        """Plain arrays in safetensors (indptr/indices/data[/factors]); no pickle."""
        m = self.matrix
        arrays = {
            "indptr": m.indptr.astype(np.int64),
            "indices": m.indices.astype(np.int32),
            "data": m.data.astype(np.float32),
            "shape": np.array(m.shape, dtype=np.int64),
        }
        if self.factors is not None:
            arrays["factors"] = np.ascontiguousarray(self.factors, dtype=np.float32)
        save_file(arrays, str(path))

    @classmethod
    def load(cls, path: Path) -> CoClick:
        a = load_file(str(path))
        shape = tuple(int(x) for x in a["shape"])
        m = sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=shape)
        return cls(m, a.get("factors"))


def _entries(indptr: np.ndarray, rows: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in the CSR arrays of the entries of `rows` (masked rows: none) and the
    index into `rows` each entry belongs to."""
    start = indptr[rows]
    cnt = np.where(ok, indptr[rows + 1] - start, 0)
    total = int(cnt.sum())
    owner = np.repeat(np.arange(len(rows)), cnt)
    pos = np.repeat(start - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt) + np.arange(total)
    return pos.astype(np.int64), owner


def interaction_counts(
    impressions: Iterable[Impression], row_of: Callable[[str], int | None], n_items: int
) -> sp.csr_matrix:
    """(users, n_items) click counts: each user's longest history once plus every clicked
    candidate. The users and clicks of both the co-click model and ALS."""
    users: dict[str, int] = {}
    hist: dict[int, list[str]] = {}
    items: list[int] = []
    cols: list[int] = []
    for imp in impressions:
        u = users.setdefault(imp.user_id, len(users))
        if len(imp.history) > len(hist.get(u, ())):
            hist[u] = imp.history
        for nid, y in zip(imp.candidates, imp.labels, strict=False):
            if y and (r := row_of(nid)) is not None:
                items.append(r)
                cols.append(u)
    for u, h in hist.items():
        for nid in h:
            if (r := row_of(nid)) is not None:
                items.append(r)
                cols.append(u)
    m = sp.csr_matrix(
        (np.ones(len(items), np.float32), (np.array(cols, np.int64), np.array(items, np.int64))),
        shape=(max(len(users), 1), n_items),
    )
    m.sum_duplicates()
    return m


def build_coclick(
    impressions: Iterable[Impression],
    row_of: Callable[[str], int | None],
    n_items: int,
    factors: int = 0,
    seed: int = 0,
) -> CoClick:
    """Co-click matrix from `impressions` only: each user's longest history (MIND repeats
    one per user) plus every clicked candidate. `factors` > 0 adds a rank-`factors` SVD."""
    m = sp.csr_matrix(interaction_counts(impressions, row_of, n_items).T, dtype=np.float32)
    m.data[:] = 1.0  # repeated clicks of one user count once
    norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
    m = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m, dtype=np.float32)
    return CoClick(m, _svd_factors(m, factors, seed) if factors > 0 else None)


def _svd_factors(m: sp.csr_matrix, k: int, seed: int) -> np.ndarray | None:
    k = min(k, min(m.shape) - 1)
    if k < 1 or m.nnz == 0:
        return None
    u, s, _ = svds(m.astype(np.float64), k=k, random_state=seed)
    return (u * s).astype(np.float32)


def click_events(
    impressions: Iterable[Impression], row_of: Callable[[str], int | None]
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, epoch seconds) of every clicked candidate with a row."""
    rows: list[int] = []
    times: list[float] = []
    for imp in impressions:
        t = imp.time.timestamp()
        for nid, y in zip(imp.candidates, imp.labels, strict=False):
            if y and (r := row_of(nid)) is not None:
                rows.append(r)
                times.append(t)
    return np.array(rows, np.int64), np.array(times, np.float64)


@dataclass
class RecencyState:
    """Decayed click counts at `ref` (the latest click): at any `t >= ref` the value is
    `value * exp(-(t - ref) / tau)`, exactly the sum over the clicks it was built from."""

    value: np.ndarray  # (N,) float64
    ref: float
    tau: float  # seconds

    @classmethod
    def build(
        cls, rows: np.ndarray, times: np.ndarray, n_items: int, tau_hours: float = RECENCY_TAU_HOURS
    ) -> RecencyState:
        tau = tau_hours * 3600.0
        if len(times) == 0:
            return cls(np.zeros(n_items), 0.0, tau)
        ref = float(times.max())
        w = np.exp(-(ref - times) / tau)
        return cls(np.bincount(rows, weights=w, minlength=n_items)[:n_items], ref, tau)

    def at(self, rows: np.ndarray, now: float | None) -> np.ndarray:
        """Decayed clicks of `rows` (< 0 or beyond the state: 0) at `now` (None: at ref)."""
        rows = np.asarray(rows, dtype=np.int64)
        ok = (rows >= 0) & (rows < len(self.value))
        v = self.value[np.where(ok, rows, 0)] * ok
        dt = 0.0 if now is None else max(float(now) - self.ref, 0.0)
        return (v * np.exp(-dt / self.tau)).astype(np.float32)


def decayed_clicks(
    click_rows: np.ndarray,
    click_times: np.ndarray,
    q_rows: np.ndarray,
    q_times: np.ndarray,
    tau_hours: float = RECENCY_TAU_HOURS,
    bin_hours: float = 1.0,
) -> np.ndarray:
    """Sum of `exp(-(t - t_click) / tau)` over the clicks of each query's row strictly
    before the query time `t` (never a click at/after it). A sweep over time bins: the
    per-row state carries the earlier bins, same-bin clicks are paired directly."""
    tau = tau_hours * 3600.0
    out = np.zeros(len(q_rows), np.float64)
    if len(click_rows) == 0 or len(q_rows) == 0:
        return out
    t0 = min(float(click_times.min()), float(q_times.min()))
    width = bin_hours * 3600.0
    cb = ((click_times - t0) // width).astype(np.int64)
    qb = ((q_times - t0) // width).astype(np.int64)
    n = int(max(click_rows.max(), q_rows.max())) + 1
    state = np.zeros(n)
    last = np.full(n, t0)
    c_order = np.lexsort((click_times, click_rows, cb))
    q_order = np.argsort(qb, kind="stable")
    c_edges = np.searchsorted(cb[c_order], np.arange(cb.max() + 2))
    q_edges = np.searchsorted(qb[q_order], np.arange(cb.max() + 2))
    for b in np.unique(np.concatenate([cb, qb[qb <= cb.max()]])):
        ci = c_order[c_edges[b] : c_edges[b + 1]]
        qi = q_order[q_edges[b] : q_edges[b + 1]]
        if len(qi):
            r, t = q_rows[qi], q_times[qi]
            out[qi] = state[r] * np.exp(-(t - last[r]) / tau)
            if len(ci):
                out[qi] += _same_bin(click_rows[ci], click_times[ci], r, t, tau)
        if len(ci):
            r, t = click_rows[ci], click_times[ci]
            end = np.full(n, -np.inf)
            np.maximum.at(end, r, t)
            u = np.unique(r)
            state[u] *= np.exp(-(end[u] - last[u]) / tau)
            state += np.bincount(r, weights=np.exp(-(end[r] - t) / tau), minlength=n)
            last[u] = end[u]
    late = qb > cb.max()  # after every click bin: the final state, decayed
    r = q_rows[late]
    out[late] = state[r] * np.exp(-(q_times[late] - last[r]) / tau)
    return out


def _same_bin(c_rows: np.ndarray, c_times: np.ndarray, q_rows: np.ndarray, q_times: np.ndarray, tau: float):
    """Decayed sum over clicks of the same row before each query (clicks sorted by row, time)."""
    lo = np.searchsorted(c_rows, q_rows, "left")
    hi = np.searchsorted(c_rows, q_rows, "right")
    cnt = hi - lo
    if cnt.sum() == 0:
        return np.zeros(len(q_rows))
    qi = np.repeat(np.arange(len(q_rows)), cnt)
    ci = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt) + np.arange(cnt.sum())
    dt = q_times[qi] - c_times[ci]
    w = np.where(dt > 0, np.exp(-np.maximum(dt, 0) / tau), 0.0)
    return np.bincount(qi, weights=w, minlength=len(q_rows))
