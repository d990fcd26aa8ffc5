"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008) and the fold-in of a user.

Users are those of the impressions the model is built from (each user's longest history
plus every clicked candidate, as `newsrec.models.cooc.build_coclick` counts them); `r_ui`
is how often user u clicked article i there. Preference `p_ui = 1` where `r_ui > 0`, else 0,
confidence `c_ui = 1 + alpha * r_ui`; the objective over *every* (user, article) pair is

    L = sum_ui c_ui (p_ui - x_u . y_i)^2 + reg (|X|^2 + |Y|^2).

Training alternates the two sides; each side is a batch of ridge regressions
`(Y^T C_u Y + reg I) x_u = Y^T C_u p_u`, solved for all rows at once by a few conjugate
gradient steps warm-started from the last iterate (Takacs, Pilaszy & Tikk 2011, as
`implicit` does): every step is one sparse pass over the interactions plus a k x k
product, so an iteration on MIND-small scale (50k users, 60k articles, 1M clicks) takes
a few seconds of numpy. Only the article factors are kept. A user is *folded in* from a
history alone by the exact solve of the same regression against the fixed article
factors (one k x k system: serving cost). Articles without interactions get zero factors,
so they score 0, as does everyone for an empty history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from newsrec.data.types import Impression
from newsrec.models.cooc import interaction_counts
from newsrec.progress import progress_bar

NZ_CHUNK = 1 << 18  # interactions per vectorised block
# One side's gathered factors live for its CG steps: nnz x k float32 (256 MB at 1M x 64).


@dataclass(frozen=True)
class ALSParams:
    """Hyper-parameters: factors k, L2 `regularization`, confidence slope `alpha`."""

    factors: int = 64
    regularization: float = 1.0
    alpha: float = 4.0
    iterations: int = 12
    cg_steps: int = 3
    seed: int = 0


@dataclass
class ALSModel:
    """Article factors `Y` (N, k) and what a fold-in needs (`gram` = Y^T Y, float64)."""

    item_factors: np.ndarray
    alpha: float
    regularization: float
    gram: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.item_factors = np.ascontiguousarray(self.item_factors, dtype=np.float32)
        if self.gram is None:
            y = self.item_factors.astype(np.float64)
            self.gram = y.T @ y

    @property
    def n_items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    def fold_in(self, hist_rows: np.ndarray) -> np.ndarray:
        """Exact least-squares user factor from a history (a row repeated n times counts
        n clicks); rows < 0 or beyond the model are skipped; empty: zeros."""
        rows = np.asarray(hist_rows, dtype=np.int64)
        rows = rows[(rows >= 0) & (rows < self.n_items)]
        k = self.factors
        if len(rows) == 0:
            return np.zeros(k, np.float32)
        rows, counts = np.unique(rows, return_counts=True)
        y = self.item_factors[rows].astype(np.float64)
        extra = self.alpha * counts  # c_ui - 1
        assert self.gram is not None
        a = self.gram + (y.T * extra) @ y
        a.flat[:: k + 1] += self.regularization
        b = y.T @ (1.0 + extra)
        return np.linalg.solve(a, b).astype(np.float32)

    def scores(self, hist_rows: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """`x_u . y_c` of the folded-in user; candidates < 0 or beyond the model score 0."""
        cand = np.asarray(cand_rows, dtype=np.int64)
        ok = (cand >= 0) & (cand < self.n_items)
        user = self.fold_in(hist_rows)
        if not user.any():
            return np.zeros(len(cand), np.float32)
        return ((self.item_factors[np.where(ok, cand, 0)] @ user) * ok).astype(np.float32)

    def save(self, path: Path) -> None:
        """Plain arrays in safetensors (factors, gram, alpha/regularization); no pickle."""
        assert self.gram is not None
        save_file(
            {
                "item_factors": self.item_factors,
                "gram": np.ascontiguousarray(self.gram, dtype=np.float64),
                "params": np.array([self.alpha, self.regularization], dtype=np.float64),
            },
            str(path),
        )

    @classmethod
    def load(cls, path: Path) -> ALSModel:
        a = load_file(str(path))
        p = a["params"]
        return cls(a["item_factors"], float(p[0]), float(p[1]), a["gram"])


def build_als(
    impressions: Iterable[Impression],
    row_of: Callable[[str], int | None],
    n_items: int,
    params: ALSParams | None = None,
    progress: bool = True,
) -> ALSModel:
    """ALS article factors of `impressions` only (see `interaction_counts`)."""
    params = params or ALSParams()
    model, _ = fit_als(interaction_counts(impressions, row_of, n_items), params, progress)
    return model


def fit_als(counts: sp.csr_matrix, params: ALSParams, progress: bool = False) -> tuple[ALSModel, np.ndarray]:
    """(model, user factors) of a (users, items) count matrix; deterministic for a seed."""
    cui = sp.csr_matrix(counts, dtype=np.float32, copy=True)  # never scale the caller's matrix
    cui.sum_duplicates()
    cui.data *= np.float32(params.alpha)  # c_ui - 1
    ciu = sp.csr_matrix(cui.T)
    n_users, n_items = cui.shape
    k = params.factors
    rng = np.random.default_rng(params.seed)
    x = (rng.standard_normal((n_users, k)) * 0.01).astype(np.float32)
    y = (rng.standard_normal((n_items, k)) * 0.01).astype(np.float32)
    y[np.diff(ciu.indptr) == 0] = 0.0
    for _ in progress_bar(range(params.iterations), desc="als", leave=False, enabled=progress):
        _solve_side(cui, y, x, params.regularization, params.cg_steps)
        _solve_side(ciu, x, y, params.regularization, params.cg_steps)
    return ALSModel(y, params.alpha, params.regularization), x


def objective(counts: sp.csr_matrix, x: np.ndarray, y: np.ndarray, alpha: float, reg: float) -> float:
    """The full HKV loss over every (user, item) pair, without forming the dense matrix:
    sum of (x.y)^2 over all pairs is tr(X^T X Y^T Y); the clicked pairs are corrected."""
    c = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    c.sum_duplicates()
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    owner = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
    s = np.einsum("ij,ij->i", x64[owner], y64[c.indices])
    conf = 1.0 + alpha * c.data
    total = float(np.sum((x64.T @ x64) * (y64.T @ y64)))
    total += float(np.sum(conf * (1.0 - s) ** 2 - s**2))
    return total + reg * float((x64**2).sum() + (y64**2).sum())


def _solve_side(c: sp.csr_matrix, y: np.ndarray, x: np.ndarray, reg: float, steps: int) -> None:
    """Update `x` in place: a few CG steps on `(Y^T Y + reg I + Y^T D_u Y) x_u = Y^T (1 + D_u) 1`
    for every row u at once (`c.data` holds D = c_ui - 1 = alpha * r_ui)."""
    y64 = y.astype(np.float64)
    gram = (y64.T @ y64 + reg * np.eye(y.shape[1])).astype(np.float32)
    owner = np.repeat(np.arange(c.shape[0], dtype=np.intp), np.diff(c.indptr))
    ones = sp.csr_matrix((1.0 + c.data, c.indices, c.indptr), shape=c.shape)
    b = np.asarray(ones @ y, dtype=np.float32)
    gathered = _gather(y, c.indices)

    def matvec(v: np.ndarray) -> np.ndarray:
        return v @ gram + _weighted_sum(c, owner, gathered, y, v)

    r = b - matvec(x)
    p = r.copy()
    rs = np.einsum("ij,ij->i", r, r)
    for _ in range(steps):
        ap = matvec(p)
        pap = np.einsum("ij,ij->i", p, ap)
        a = np.divide(rs, pap, out=np.zeros_like(rs), where=pap > 0)
        x += a[:, None] * p
        r -= a[:, None] * ap
        rs_new = np.einsum("ij,ij->i", r, r)
        beta = np.divide(rs_new, rs, out=np.zeros_like(rs), where=rs > 0)
        p = r + beta[:, None] * p
        rs = rs_new
    x[np.diff(c.indptr) == 0] = 0.0  # no interactions: the exact solution is 0


def _weighted_sum(
    c: sp.csr_matrix, owner: np.ndarray, gathered: list[np.ndarray], y: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Row u: `sum_i D_ui (y_i . v_u) y_i` (a sampled dot per interaction, then a sparse
    product); `gathered` holds `y[c.indices]` in NZ_CHUNK blocks."""
    dots = np.empty(len(c.data), np.float32)
    for j, yi in enumerate(gathered):
        s = j * NZ_CHUNK
        dots[s : s + len(yi)] = np.einsum("ij,ij->i", yi, np.take(v, owner[s : s + len(yi)], axis=0))
    w = sp.csr_matrix((c.data * dots, c.indices, c.indptr), shape=c.shape)
    return np.asarray(w @ y, dtype=np.float32)


def _gather(y: np.ndarray, indices: np.ndarray) -> list[np.ndarray]:
    """`y[indices]` in NZ_CHUNK blocks, gathered once per side (y is fixed during it).
    np.take with intp indices: fancy indexing with int32 ones was ~10x slower here."""
    return [
        np.take(y, indices[s : s + NZ_CHUNK].astype(np.intp), axis=0)
        for s in range(0, len(indices), NZ_CHUNK)
    ]
