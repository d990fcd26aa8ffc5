"""Synthetic MIND: a generator of MIND-format data with the structure and dynamics of real logs.

The generative model (docs/data.md has the full story and the calibration table):

- Articles: a topic (a MIND category), a storyline (entity cluster) within the topic or
  none, a publish hour, a lifetime (log-normal), an appeal (the popularity head: per-article
  click propensity varies tenfold) and a latent taste vector. Text and entities come from
  `synth_text`, each article from its own random stream.
- Users: 1-3 interest topics with weights, 1-2 favourite storylines in each, a latent
  taste vector (co-click structure no text shows) and an activity level.
- Impressions, hour by hour: the platform shows live (published, not expired) articles
  chosen mostly by freshness, a little by appeal and by the user's utility, about 37 per
  list (MIND-small's mean). The user clicks 1+ of them (about 1.5) by utility = topic +
  storyline + taste . taste + appeal - age / 36 h + Gumbel noise.
- History: the user's clicks before the impression's day (at most 50, oldest first).
- Time: warm-up days (not logged; they build histories), train days 0-5 and the dev day 6.
  Articles published on day 6 are cold start: they are not in train at all.

Every number comes from `numpy.random` generators seeded with `seed`, and sets are
never iterated into output, so a seed gives byte-identical files.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from newsrec.data import synth_vocab as V
from newsrec.data.reader import format_time
from newsrec.data.synth_text import Catalogue, article_text, build_catalogue
from newsrec.progress import progress_bar

START = datetime(2019, 11, 9)  # day 0; MIND's train week starts on Nov 9, 2019
TRAIN_DAYS = 6  # days 0-5 are train, day 6 is dev
HISTORY_MAX = 50
TRUTH_FILE = "synth_truth.json"


@dataclass(frozen=True)
class SynthConfig:
    """Scale of a synthetic dataset."""

    n_news: int  # articles published over the whole period (not all are shown)
    n_users: int
    train_impressions: int
    dev_impressions: int
    warmup_days: int  # simulated but not logged: recent histories
    warmup_impressions_per_day: int
    archive_days: int  # before the warm-up: the long-term histories are sampled from these
    clusters_per_topic: int
    members_per_cluster: int
    display_mean: float = 38.0  # log-normal list length; ~37 after clipping, as MIND-small
    display_max: int = 100
    shortlist: int = 800
    new_user_share: float = 0.07  # users whose first day is the dev day
    joining_share: float = 0.23  # users who join during warm-up or train: no long-term history
    archive_history_mean: float = 30.0


SIZES: dict[str, SynthConfig] = {
    "tiny": SynthConfig(
        600, 500, 1400, 600, 2, 200, 4, 3, 6, display_mean=15.0, display_max=40, shortlist=200
    ),
    "small": SynthConfig(60_000, 50_000, 150_000, 70_000, 2, 20_000, 10, 12, 9),
    "medium": SynthConfig(150_000, 125_000, 375_000, 175_000, 2, 50_000, 10, 16, 10),
    # MIND-large's shape: 1M users, 161k news, 2,232,748 train / 376,471 dev impressions.
    # The log is streamed to disk an hour at a time (_SplitLog), so memory follows the
    # catalogue and the users, not the log.
    "large": SynthConfig(200_000, 1_000_000, 2_232_748, 376_471, 2, 300_000, 10, 20, 10),
}

# Click utility = topic + storyline + taste + appeal - age / FRESH_H + Gumbel noise.
# Topic and storyline are what text and entities can see (cold start needs them); the
# latent taste is co-click structure no text shows (item-kNN and matrix factorisation
# find it); appeal is the popularity head, and age the life cycle of news.
W_TOPIC = 1.5
W_CLUSTER = 1.5
W_TASTE = 2.5
TASTE_DIM = 8
W_APPEAL = 1.0
APPEAL_SIGMA = 1.5
CLICK_NOISE = 0.7  # scale of the Gumbel noise of a click decision
FRESH_H = 36.0  # hours of age that cost one unit of click utility
LIFE_MEDIAN_H = 72.0  # the platform shows an article for a log-normal time (8-168 h)
LIFE_SIGMA = 0.5
LIFE_MAX_H = 168.0
# The display policy: live articles mostly by freshness, a little by appeal and by the
# user's utility, so shown lists keep a wide spread of appeal (popularity stays
# discriminative within an impression, as in real logs).
DISPLAY_FRESH_H = 120.0
DISPLAY_APPEAL = 0.3
DISPLAY_PERSONAL = 0.5
ARCHIVE_OVERSAMPLE = 3


@dataclass
class SynthSummary:
    """What `generate` wrote, with the figures docs/data.md quotes."""

    size: str
    seed: int
    out_dir: str
    news: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    impressions: dict[str, int] = field(default_factory=dict)
    clicks: dict[str, int] = field(default_factory=dict)
    entities: dict[str, int] = field(default_factory=dict)
    cold_start_share: float = 0.0  # distinct dev-clicked articles absent from train news.tsv
    empty_history_share: float = 0.0  # dev users whose dev history is empty
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


Row = tuple[int, datetime, str, list[int], list[bool]]  # (user, time, history, ids, labels)


class _SplitLog:
    """behaviors.tsv of one split, written an hour at a time (so memory does not grow
    with the log), with what the summary and news.tsv need kept as it goes.

    An hour's rows are sorted by time (stably) before they are written: every row of
    an hour is later than every row of the hours before, so the file is the log sorted
    by time, impression ids in that order, as if it had been sorted as a whole."""

    def __init__(self, split_dir: Path, nid: list[str]) -> None:
        split_dir.mkdir(parents=True, exist_ok=True)
        self.dir = split_dir
        self._fh = (split_dir / "behaviors.tsv").open("w", encoding="utf-8")
        self._tok = ([f"{x}-0" for x in nid], [f"{x}-1" for x in nid])
        self._pos = {x: i for i, x in enumerate(nid)}
        # Histories whose articles are in `used`, for the current day: a history is a
        # snapshot per user and day, so a day's set stays small; across days an article
        # may be added twice, to a set.
        self._seen_hist: set[str] = set()
        self._day: object = None
        self.used: set[int] = set()  # articles shown or in a history: news.tsv
        self.users: dict[int, bool] = {}  # user -> their history is empty (last row)
        self.clicked: set[int] = set()
        self.impressions = 0
        self.clicks = 0

    def add_hour(self, rows: list[Row]) -> None:
        rows.sort(key=lambda row: row[1])  # stable: equal times keep simulation order
        if rows and rows[0][1].date() != self._day:
            self._day = rows[0][1].date()
            self._seen_hist.clear()
        tok, lines = self._tok, []
        for uid, t, hist, ids, labels in rows:
            self.impressions += 1
            self.used.update(ids)
            self.clicks += sum(labels)
            self.clicked.update(a for a, lab in zip(ids, labels, strict=True) if lab)
            self.users[uid] = hist == ""
            imps = " ".join([tok[lab][a] for a, lab in zip(ids, labels, strict=True)])
            lines.append(f"{self.impressions}\tU{uid + 1}\t{format_time(t)}\t{hist}\t{imps}\n")
            if hist and hist not in self._seen_hist:
                self._seen_hist.add(hist)
                self.used.update(self._pos[h] for h in hist.split(" "))
        self._fh.write("".join(lines))

    def close(self) -> None:
        self._fh.close()
        self._seen_hist.clear()


def _diurnal() -> np.ndarray:
    h = np.arange(24)
    w = 0.25 + np.exp(-0.5 * ((h - 8) / 2.0) ** 2) + 0.8 * np.exp(-0.5 * ((h - 20) / 2.5) ** 2)
    return w / w.sum()


def generate(size: str, seed: int, out_dir: str | Path, progress: bool = False) -> SynthSummary:
    """Write `out_dir/train` and `out_dir/dev` in MIND format (plus `synth_truth.json`)."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    t0 = time.perf_counter()
    cfg = SIZES[size]
    rng = np.random.default_rng(seed)
    cat = build_catalogue(rng, cfg.clusters_per_topic, cfg.members_per_cluster)
    w = _world(rng, cfg, cat)
    archive = np.flatnonzero(w.pub < -cfg.warmup_days * 24)
    n_hist = np.where(
        w.start == -cfg.warmup_days,
        np.clip(
            np.round(rng.lognormal(np.log(cfg.archive_history_mean) - 0.25, 0.7, size=w.start.size)), 1, 60
        ),
        0,
    ).astype(np.int64)
    clicks = _archive_history(rng, n_hist, archive, w, len(V.TOPICS))
    out = Path(out_dir)
    logs = {name: _SplitLog(out / name, w.nid) for name in ("train", "dev")}
    days = range(-cfg.warmup_days, TRAIN_DAYS + 1)
    bar = progress_bar(total=len(days) * 24, desc=f"synth {size}", unit="h", enabled=progress)
    try:
        for day in days:
            _simulate_day(rng, cfg, w, day, clicks, logs, bar)
    finally:
        bar.close()
        for log in logs.values():
            log.close()
    del clicks

    summary = SynthSummary(size=size, seed=seed, out_dir=str(out))
    texts = _Texts(seed, cat, w)
    train_news = _write_split(logs["train"], cat, texts, summary, "train")
    _write_split(logs["dev"], cat, texts, summary, "dev")
    dev_clicked = logs["dev"].clicked
    summary.cold_start_share = round(len(dev_clicked - train_news) / max(1, len(dev_clicked)), 4)
    dev_users = logs["dev"].users
    summary.empty_history_share = round(sum(dev_users.values()) / max(1, len(dev_users)), 4)
    _write_truth(out / TRUTH_FILE, size, seed, cat, w)
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary


@dataclass
class _World:
    """The latent state of articles and users."""

    topic: np.ndarray  # article -> topic
    cluster: np.ndarray  # article -> storyline, -1 for none
    col: np.ndarray  # article -> column of `ca` (storyline, or the last "none" column)
    pub: np.ndarray  # publish hour (0 = START)
    life: np.ndarray  # hours during which the platform shows it
    appeal: np.ndarray  # click propensity: the popularity head
    a_taste: np.ndarray  # (n_news, TASTE_DIM) latent co-click factors
    news_num: np.ndarray
    rotation: np.ndarray  # phase of the article in the platform's shortlist rotation
    ta: np.ndarray  # (users, topics) topic utility
    ca: np.ndarray  # (users, storylines + 1) storyline utility
    u_taste: np.ndarray  # (users, TASTE_DIM)
    activity: np.ndarray
    start: np.ndarray  # first day a user is active
    truth_users: list[dict[str, list[int]]]
    nid: list[str] = field(default_factory=list)


def _world(rng: np.random.Generator, cfg: SynthConfig, cat: Catalogue) -> _World:
    """Articles and users. Storyline sizes are skewed: some are big running stories."""
    n_topics, n_clusters = len(V.TOPICS), len(cat.cluster_topic)
    prior = np.array([t.weight for t in V.TOPICS])
    prior /= prior.sum()
    n = cfg.n_news
    topic = rng.choice(n_topics, size=n, p=prior)
    cl_weight = rng.gamma(1.0, 1.0, size=n_clusters)
    cluster = np.empty(n, dtype=np.int64)
    for t in range(n_topics):
        idx = np.flatnonzero(topic == t)
        cls = np.array(cat.topic_clusters[t])
        cluster[idx] = rng.choice(cls, size=idx.size, p=cl_weight[cls] / cl_weight[cls].sum())
    cluster[rng.random(n) < 0.08] = -1  # no entities, no storyline
    first_day = -(cfg.warmup_days + 1 + cfg.archive_days)
    pub = rng.uniform(first_day * 24, (TRAIN_DAYS + 1) * 24, size=n)
    life = np.clip(rng.lognormal(np.log(LIFE_MEDIAN_H), LIFE_SIGMA, size=n), 8.0, LIFE_MAX_H)
    appeal = rng.normal(0.0, APPEAL_SIGMA, size=n)
    a_taste = rng.standard_normal((n, TASTE_DIM)).astype(np.float32)
    news_num = rng.choice(np.arange(1, 3 * n + 1), size=n, replace=False)
    rotation = rng.random(n)

    nu = cfg.n_users
    ta = np.zeros((nu, n_topics), dtype=np.float32)
    ca = np.zeros((nu, n_clusters + 1), dtype=np.float32)  # last column: "no storyline"
    k_topics = rng.choice([1, 2, 3], size=nu, p=[0.3, 0.45, 0.25])
    truth_users: list[dict[str, list[int]]] = []
    for u in range(nu):
        topics = rng.choice(n_topics, size=k_topics[u], replace=False, p=prior)
        wt = rng.dirichlet(np.ones(k_topics[u]))
        ta[u, topics] = W_TOPIC * (0.6 + wt)
        favs: list[int] = []
        for t in topics:
            t_cls = cat.topic_clusters[t]
            k = min(len(t_cls), 1 + int(rng.random() < 0.5))
            favs.extend(int(c) for c in rng.choice(t_cls, size=k, replace=False))
        ca[u, favs] = W_CLUSTER
        truth_users.append({"topics": [int(t) for t in topics], "clusters": favs})
    u_taste = (rng.standard_normal((nu, TASTE_DIM)) / np.sqrt(TASTE_DIM)).astype(np.float32)
    activity = rng.lognormal(0.0, 0.7, size=nu)
    start = np.full(nu, -cfg.warmup_days)
    kind = rng.random(nu)
    joining = kind < cfg.joining_share
    start[joining] = rng.integers(-cfg.warmup_days + 1, TRAIN_DAYS, size=int(joining.sum()))
    start[kind > 1.0 - cfg.new_user_share] = TRAIN_DAYS
    col = np.where(cluster < 0, n_clusters, cluster)
    w = _World(
        topic,
        cluster,
        col,
        pub,
        life,
        appeal,
        a_taste,
        news_num,
        rotation,
        ta,
        ca,
        u_taste,
        activity,
        start,
        truth_users,
    )
    w.nid = [f"N{x}" for x in news_num.tolist()]
    return w


def _simulate_day(
    rng: np.random.Generator,
    cfg: SynthConfig,
    w: _World,
    day: int,
    clicks: list[list[int]],
    logs: dict[str, _SplitLog],
    bar: Any,
) -> None:
    """One day of impressions; clicks join the histories at the end of the day."""
    if day < 0:
        n_imp = cfg.warmup_impressions_per_day
    elif day < TRAIN_DAYS:
        n_imp = cfg.train_impressions // TRAIN_DAYS + (cfg.train_impressions % TRAIN_DAYS if day == 0 else 0)
    else:
        n_imp = cfg.dev_impressions
    eligible = np.flatnonzero(w.start <= day)
    p_user = w.activity[eligible] / w.activity[eligible].sum()
    users = eligible[rng.choice(eligible.size, size=n_imp, p=p_user)]
    hours = rng.choice(24, size=n_imp, p=_diurnal())
    secs = rng.integers(0, 3600, size=n_imp)
    # History is a snapshot taken at the start of the day, as in MIND.
    hist_cache: dict[int, str] = {}
    day_clicks: list[tuple[int, list[int]]] = []
    split = None if day < 0 else ("train" if day < TRAIN_DAYS else "dev")
    for hour in range(24):
        bar.update(1)
        sel = np.flatnonzero(hours == hour)
        # Live at the start of the hour: nothing is shown before it is published.
        shown = _hour(rng, cfg, w, float(day * 24 + hour), users[sel]) if sel.size else None
        if shown is None:
            continue
        t_hour = START + timedelta(days=day, hours=hour)
        rows: list[Row] = []
        for r, uid in enumerate(users[sel].tolist()):
            ids, labels = shown[r]
            day_clicks.append((uid, [a for a, lab in zip(ids, labels, strict=True) if lab]))
            if split is not None:
                h = hist_cache.get(uid)
                if h is None:
                    h = hist_cache[uid] = " ".join([w.nid[a] for a in clicks[uid][-HISTORY_MAX:]])
                when = t_hour + timedelta(seconds=int(secs[sel[r]]))
                rows.append((uid, when, h, ids, labels))
        if split is not None:
            logs[split].add_hour(rows)
    for uid, ids in day_clicks:
        mine = clicks[uid]
        # A re-click of an article shown again does not repeat it in the history.
        mine.extend(a for a in ids if a not in mine[-HISTORY_MAX:])


def _hour(
    rng: np.random.Generator, cfg: SynthConfig, w: _World, now: float, hu: np.ndarray
) -> list[tuple[list[int], list[bool]]] | None:
    """What each user of this hour is shown and clicks: (article ids, labels) per user.

    The platform shows live articles mostly by freshness, a little by appeal, and
    personalises mildly; so what is shown keeps a wide spread of appeal and taste, and
    popularity, freshness and co-click taste decide the clicks within an impression.
    """
    age = now - w.pub
    live = np.flatnonzero((age >= 0) & (age < w.life))
    if live.size < 3:
        return None
    short = _shortlist(live, w.rotation, now, cfg.shortlist)
    age_s = (now - w.pub[short]).astype(np.float32)
    b_show = -age_s / DISPLAY_FRESH_H + DISPLAY_APPEAL * w.appeal[short].astype(np.float32)
    b_click = W_APPEAL * w.appeal[short].astype(np.float32) - age_s / FRESH_H
    util = (
        w.ta[hu][:, w.topic[short]]
        + w.ca[hu][:, w.col[short]]
        + W_TASTE * (w.u_taste[hu] @ w.a_taste[short].T)
    )
    disp_keys = b_show[None, :] + DISPLAY_PERSONAL * util + _gumbel(rng, util.shape)
    m = min(cfg.display_max, short.size)
    top = np.argpartition(-disp_keys, m - 1, axis=1)[:, :m]
    n_show = np.clip(np.round(rng.lognormal(np.log(cfg.display_mean) - 0.18, 0.6, size=hu.size)), 2, m)
    n_show = n_show.astype(np.int64)
    # Keep each impression's n_show best display keys; the rest are not shown.
    order = np.argsort(-np.take_along_axis(disp_keys, top, axis=1), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    shown_mask = np.arange(m)[None, :] < n_show[:, None]
    click_keys = np.take_along_axis(util, top, axis=1) + b_click[top] + CLICK_NOISE * _gumbel(rng, top.shape)
    click_keys[~shown_mask] = -np.inf
    n_click = np.minimum(n_show - 1, 1 + rng.poisson(0.5, size=hu.size))
    rank = np.argsort(np.argsort(-click_keys, axis=1), axis=1)
    clicked = (rank < n_click[:, None]) & shown_mask
    shuffle = np.argsort(np.where(shown_mask, rng.random(top.shape), 2.0), axis=1)
    ids = np.take_along_axis(short[top], shuffle, axis=1).tolist()
    labels = np.take_along_axis(clicked, shuffle, axis=1).tolist()
    return [(ids[r][: int(k)], labels[r][: int(k)]) for r, k in enumerate(n_show.tolist())]


def _shortlist(live: np.ndarray, rotation: np.ndarray, now: float, size: int) -> np.ndarray:
    """About `size` live articles, in a rotation that reaches every live article every
    live.size / size hours (a golden-ratio step through fixed per-article phases).

    Unbiased, so the display preferences act once; and, unlike a fresh random draw each
    hour, no article that lives a day goes unshown, so dev lists show the train catalogue
    and "cold" means published on the dev day, whatever the size of the catalogue."""
    if live.size <= size:
        return live
    phase = (rotation[live] + now * 0.6180339887498949) % 1.0
    return live[phase < size / live.size]


def _gumbel(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Standard Gumbel noise in float32 (half the time and memory of rng.gumbel)."""
    u = rng.random(shape, dtype=np.float32)
    return -np.log(-np.log(np.maximum(u, np.float32(1e-12))))


def _archive_history(
    rng: np.random.Generator, n_hist: np.ndarray, archive: np.ndarray, w: _World, n_topics: int
) -> list[list[int]]:
    """Long-term click histories from before the simulated days, by the same utility
    (topic + storyline + appeal + taste) without freshness. Sampled in two stages, a
    group (storyline, or topic for articles without one) then an article in it, so it is
    all vectorised; the taste term then picks n_hist of ARCHIVE_OVERSAMPLE x n_hist such
    proposals per user (Gumbel top-k, importance resampling)."""
    nu = n_hist.size
    n_cols = w.ca.shape[1]  # storylines + the "none" column
    a_col = w.col[archive]
    group = np.where(a_col < n_cols - 1, a_col, n_cols - 1 + w.topic[archive])
    n_groups = n_cols - 1 + n_topics
    g_topic = np.concatenate([np.zeros(n_cols - 1, dtype=np.int64), np.arange(n_topics)])
    g_topic[group] = w.topic[archive]
    g_col = np.minimum(np.arange(n_groups), n_cols - 1)
    wt = np.exp(W_APPEAL * w.appeal[archive])
    mass = np.bincount(group, weights=wt, minlength=n_groups)
    users = np.repeat(np.arange(nu), n_hist * ARCHIVE_OVERSAMPLE)
    with np.errstate(divide="ignore"):  # a group without archive articles: log 0
        log_mass = np.log(mass)
    g = _draw_groups(w, users, users + rng.random(users.size), g_topic, g_col, log_mass)
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.searchsorted(sorted_group, np.arange(n_groups))
    ends = np.searchsorted(sorted_group, np.arange(n_groups), side="right")
    cw = np.cumsum(wt[order])
    base = np.where(starts > 0, cw[np.maximum(starts - 1, 0)], 0.0)
    target = base[g] + rng.random(users.size) * (cw[np.maximum(ends - 1, 0)][g] - base[g])
    pos = np.minimum(np.searchsorted(cw, target, side="right"), ends[g] - 1)
    art = archive[order][pos]
    keep = _taste_pick(rng, users, art, n_hist, w)
    users, art = users[keep], art[keep]
    # One click per (user, article), oldest first.
    key = np.unique(users.astype(np.int64) * (w.pub.size + 1) + art)
    users_u, art_u = key // (w.pub.size + 1), key % (w.pub.size + 1)
    o = np.lexsort((w.pub[art_u], users_u))
    users_u, art_u = users_u[o], art_u[o]
    out: list[list[int]] = [[] for _ in range(nu)]
    bounds = np.searchsorted(users_u, np.arange(nu + 1))
    art_l = art_u.tolist()
    for u in np.flatnonzero(n_hist).tolist():
        out[u] = art_l[bounds[u] : bounds[u + 1]]
    return out


def _draw_groups(
    w: _World,
    users: np.ndarray,
    keys: np.ndarray,
    g_topic: np.ndarray,
    g_col: np.ndarray,
    log_mass: np.ndarray,
) -> np.ndarray:
    """The group of each proposal: `keys` = user + uniform, inverted through the user's
    cumulative group distribution. Users go in blocks so the (block, groups) matrices
    stay small at any number of users (the result is the same for any block size)."""
    n_groups = log_mass.size
    g = np.empty(users.size, dtype=np.int64)
    block = max(1, (1 << 22) // n_groups)
    bounds = np.searchsorted(users, np.arange(0, w.ta.shape[0] + block, block))  # users is sorted
    for b, u0 in enumerate(range(0, w.ta.shape[0], block)):
        u = np.arange(u0, min(u0 + block, w.ta.shape[0]))
        logits = w.ta[u][:, g_topic] + w.ca[u][:, g_col] + log_mass[None, :]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        cum[:, -1] = 1.0
        # Row offsets make the rows one sorted array, so one searchsorted samples them all.
        flat = (cum + u[:, None]).ravel()
        lo, hi = bounds[b], bounds[b + 1]
        g[lo:hi] = np.searchsorted(flat, keys[lo:hi], side="right") - (users[lo:hi] - u0) * n_groups
    return np.minimum(g, n_groups - 1)


def _taste_pick(
    rng: np.random.Generator, users: np.ndarray, art: np.ndarray, n_hist: np.ndarray, w: _World
) -> np.ndarray:
    """Mask of the n_hist[u] proposals of each user with the best taste + Gumbel keys
    (`users` is sorted)."""
    keys = np.empty(users.size, dtype=np.float32)
    for lo in range(0, users.size, 1 << 18):  # chunks bound the (chunk, TASTE_DIM) products
        u, a = users[lo : lo + (1 << 18)], art[lo : lo + (1 << 18)]
        keys[lo : lo + u.size] = W_TASTE * np.einsum("ij,ij->i", w.u_taste[u], w.a_taste[a])
    keys += _gumbel(rng, users.size)
    o = np.lexsort((-keys, users))
    first = np.searchsorted(users, users[o])  # users is sorted: start of each user's block
    keep = np.zeros(users.size, dtype=bool)
    keep[o] = (np.arange(users.size) - first) < n_hist[users[o]]
    return keep


class _Texts:
    """Each article's text from its own counter-based stream keyed by (seed, news id), so
    an article reads the same in train and dev news.tsv and whatever the click model does
    (the catalogue, and so embedding caches, survive changes of the simulation)."""

    def __init__(self, seed: int, cat: Catalogue, w: _World) -> None:
        self._bits = np.random.Philox(key=0)
        self._rng = np.random.Generator(self._bits)
        self._state = self._bits.state
        self._seed, self._cat, self._w = seed, cat, w
        self._done: dict[int, str] = {}
        self.entities: dict[int, list[str]] = {}

    def _reset(self, a: int) -> np.random.Generator:
        st = self._state
        st["state"]["key"][:] = (self._seed, int(self._w.news_num[a]))
        st["state"]["counter"][:] = 0
        st["buffer_pos"], st["has_uint32"], st["uinteger"] = 4, 0, 0
        self._bits.state = st
        return self._rng

    def line(self, a: int) -> str:
        """The news.tsv line of article `a`."""
        got = self._done.get(a)
        if got is not None:
            return got
        w, cat = self._w, self._cat
        rng = self._reset(a)
        ti, c = int(w.topic[a]), int(w.cluster[a])
        cross = bool(rng.random() < 0.12)
        empty_abs = bool(rng.random() < 0.03)
        title, abstract, tj, aj, eids = article_text(rng, ti, c, cat, cross, empty_abs, float(w.pub[a]))
        topic = V.TOPICS[ti]
        sub = (
            cat.cluster_subcat[c]
            if c >= 0
            else topic.subcategories[int(rng.integers(len(topic.subcategories)))]
        )
        url = f"https://synth.newsrec.invalid/news/{w.nid[a]}.html"
        line = "\t".join((w.nid[a], topic.category, sub, title, abstract, url, tj, aj)) + "\n"
        self._done[a], self.entities[a] = line, eids
        return line


def _write_split(
    log: _SplitLog,
    cat: Catalogue,
    texts: _Texts,
    summary: SynthSummary,
    name: str,
) -> set[int]:
    """Write one split's news and entity files (its behaviors.tsv is written); returns
    the article indices in its news.tsv."""
    split_dir, used = log.dir, log.used
    arts = sorted(used)
    ent_used: dict[str, None] = {}
    with (split_dir / "news.tsv").open("w", encoding="utf-8") as fh:
        for lo in range(0, len(arts), 10_000):  # bounded buffers at any catalogue size
            chunk = arts[lo : lo + 10_000]
            fh.write("".join([texts.line(a) for a in chunk]))
            for a in chunk:
                ent_used.update(dict.fromkeys(texts.entities[a]))

    by_qid = {e.wikidata_id: i for i, e in enumerate(cat.entities)}
    vec_lines = [
        _vec_line(q, cat.entity_vectors[by_qid[q]]) for q in sorted(ent_used, key=lambda q: by_qid[q])
    ]
    (split_dir / "entity_embedding.vec").write_text("".join(vec_lines), encoding="utf-8")
    rel_lines = [_vec_line(r, v) for r, v in zip(cat.relation_ids, cat.relation_vectors, strict=True)]
    (split_dir / "relation_embedding.vec").write_text("".join(rel_lines), encoding="utf-8")

    summary.news[name] = len(arts)
    summary.users[name] = len(log.users)
    summary.impressions[name] = log.impressions
    summary.clicks[name] = log.clicks
    summary.entities[name] = len(vec_lines)
    return used


def _vec_line(key: str, vec: np.ndarray) -> str:
    # MIND's .vec lines end with a tab before the newline.
    return key + "\t" + "\t".join(f"{x:.6f}" for x in vec.tolist()) + "\t\n"


def _write_truth(path: Path, size: str, seed: int, cat: Catalogue, w: _World) -> None:
    """The latent structure (for tests and analysis; models must not read it).

    `news` maps an id to [topic, storyline, publish hour, appeal]."""
    truth = {
        "size": size,
        "seed": seed,
        "topics": [t.category for t in V.TOPICS],
        "clusters": [
            {
                "topic": int(cat.cluster_topic[c]),
                "subcategory": cat.cluster_subcat[c],
                "entities": [cat.entities[i].wikidata_id for i in cat.cluster_members[c]],
                "late_entities": {
                    cat.entities[i].wikidata_id: round(cat.entities[i].debut, 2)
                    for i in cat.cluster_members[c]
                    if np.isfinite(cat.entities[i].debut)
                },
            }
            for c in range(len(cat.cluster_members))
        ],
        "users": {f"U{u + 1}": d for u, d in enumerate(w.truth_users)},
        "news": {
            w.nid[a]: [
                int(w.topic[a]),
                int(w.cluster[a]),
                round(float(w.pub[a]), 2),
                round(float(w.appeal[a]), 3),
            ]
            for a in range(w.news_num.size)
        },
    }
    path.write_text(json.dumps(truth, separators=(",", ":")), encoding="utf-8")
