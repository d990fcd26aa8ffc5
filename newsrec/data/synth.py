"""Synthetic MIND: a generator of MIND-format data with the structure a recommender needs.

The generative model (docs/data.md has the full story):

- Articles: a topic (a MIND category), a storyline (entity cluster) within the topic or
  none, a publish hour, a lifetime and a latent popularity. Text and entities come from
  `synth_text`.
- Users: 1-3 interest topics with weights and 1-2 favourite storylines in each.
- Impressions, hour by hour: what is shown is drawn from live (published, not expired)
  articles by popularity and freshness, mildly personalised, so negatives are recent,
  popular-ish articles. The user clicks 1+ of them by utility = topic interest +
  storyline interest + popularity + freshness + Gumbel noise.
- History: the user's clicks before the impression's day (at most 50, oldest first).
- Time: warm-up days (not logged; they build histories), train days 0-5 and the dev day 6.
  Articles published on day 6 are cold start: they are not in train at all.

Every number comes from one `numpy.random.Generator` seeded with `seed`, and sets are
never iterated into output, so a seed gives byte-identical files.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

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
    display_mean: float = 35.0
    display_max: int = 80
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
}

# Utility weights of the click model; the storyline term is what text-only topic
# models cannot see, so a model with entities has something to gain.
W_TOPIC = 1.5
W_CLUSTER = 2.0
W_POP = 0.6
W_FRESH = 1.0
DISPLAY_PERSONAL = 0.5
FRESH_HOURS = 14.0


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


@dataclass
class _Log:
    """Rows of one split: (user, time, history string, ids, labels)."""

    rows: list[tuple[int, datetime, str, list[int], list[bool]]] = field(default_factory=list)


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
    text_rng = np.random.default_rng([seed, 1])  # text has its own stream: simulation order stays fixed
    cat = build_catalogue(rng, cfg.clusters_per_topic, cfg.members_per_cluster)
    n_topics = len(V.TOPICS)
    n_clusters = len(cat.cluster_topic)
    topic_prior = np.array([t.weight for t in V.TOPICS])
    topic_prior /= topic_prior.sum()

    # Articles. Storyline sizes are skewed: some storylines are big running stories.
    n = cfg.n_news
    a_topic = rng.choice(n_topics, size=n, p=topic_prior)
    cl_weight = rng.gamma(1.0, 1.0, size=n_clusters)
    a_cluster = np.empty(n, dtype=np.int64)
    for t in range(n_topics):
        idx = np.flatnonzero(a_topic == t)
        cls = np.array(cat.topic_clusters[t])
        p = cl_weight[cls] / cl_weight[cls].sum()
        a_cluster[idx] = rng.choice(cls, size=idx.size, p=p)
    a_cluster[rng.random(n) < 0.08] = -1  # no entities, no storyline
    first_day = -(cfg.warmup_days + 1 + cfg.archive_days)
    a_pub = rng.uniform(first_day * 24, (TRAIN_DAYS + 1) * 24, size=n)  # publish hour
    a_life = rng.uniform(18.0, 48.0, size=n)
    a_logpop = rng.normal(0.0, 0.8, size=n)
    news_num = rng.choice(np.arange(1, 3 * n + 1), size=n, replace=False)

    # Users: interest topics with weights, favourite storylines inside them.
    nu = cfg.n_users
    ta = np.zeros((nu, n_topics), dtype=np.float32)
    ca = np.zeros((nu, n_clusters + 1), dtype=np.float32)  # last column: "no storyline"
    k_topics = rng.choice([1, 2, 3], size=nu, p=[0.3, 0.45, 0.25])
    truth_users: list[dict[str, list[int]]] = []
    for u in range(nu):
        topics = rng.choice(n_topics, size=k_topics[u], replace=False, p=topic_prior)
        w = rng.dirichlet(np.ones(k_topics[u]))
        ta[u, topics] = W_TOPIC * (0.6 + w)
        favs: list[int] = []
        for t in topics:
            t_cls = cat.topic_clusters[t]
            favs.extend(
                int(c)
                for c in rng.choice(t_cls, size=min(len(t_cls), 1 + int(rng.random() < 0.5)), replace=False)
            )
        ca[u, favs] = W_CLUSTER
        truth_users.append({"topics": [int(t) for t in topics], "clusters": favs})
    u_activity = rng.lognormal(0.0, 0.7, size=nu)
    u_start = np.full(nu, -cfg.warmup_days)
    kind = rng.random(nu)
    joining = kind < cfg.joining_share
    u_start[joining] = rng.integers(-cfg.warmup_days + 1, TRAIN_DAYS, size=int(joining.sum()))
    u_start[kind > 1.0 - cfg.new_user_share] = TRAIN_DAYS
    a_clusters_col = np.where(a_cluster < 0, n_clusters, a_cluster)
    archive = np.flatnonzero(a_pub < -cfg.warmup_days * 24)
    n_hist = np.where(
        u_start == -cfg.warmup_days,
        np.clip(np.round(rng.lognormal(np.log(cfg.archive_history_mean) - 0.25, 0.7, size=nu)), 1, 60),
        0,
    ).astype(np.int64)
    clicks = _archive_history(
        rng, n_hist, archive, a_pub, a_topic, a_clusters_col, a_logpop, ta, ca, n_topics
    )
    logs = {"train": _Log(), "dev": _Log()}
    diurnal = _diurnal()
    days = range(-cfg.warmup_days, TRAIN_DAYS + 1)
    nid = [f"N{x}" for x in news_num.tolist()]
    bar = progress_bar(total=len(days) * 24, desc=f"synth {size}", unit="h", enabled=progress)
    for day in days:
        if day < 0:
            n_imp = cfg.warmup_impressions_per_day
        elif day < TRAIN_DAYS:
            n_imp = cfg.train_impressions // TRAIN_DAYS + (
                cfg.train_impressions % TRAIN_DAYS if day == 0 else 0
            )
        else:
            n_imp = cfg.dev_impressions
        eligible = np.flatnonzero(u_start <= day)
        p_user = u_activity[eligible] / u_activity[eligible].sum()
        users = eligible[rng.choice(eligible.size, size=n_imp, p=p_user)]
        hours = rng.choice(24, size=n_imp, p=diurnal)
        secs = rng.integers(0, 3600, size=n_imp)
        # History is a snapshot taken at the start of the day, as in MIND.
        hist_cache: dict[int, str] = {}
        day_clicks: list[tuple[int, list[int]]] = []
        split = None if day < 0 else ("train" if day < TRAIN_DAYS else "dev")
        for hour in range(24):
            bar.update(1)
            sel = np.flatnonzero(hours == hour)
            if sel.size == 0:
                continue
            now = day * 24 + hour + 0.5
            age = now - a_pub
            live = np.flatnonzero((age >= 0) & (age < a_life))
            if live.size < 3:
                continue
            base = a_logpop[live] - age[live] / FRESH_HOURS
            n_short = min(cfg.shortlist, live.size)
            keys = base + _gumbel(rng, live.size)
            short = live[np.argpartition(-keys, n_short - 1)[:n_short]]
            b_short = a_logpop[short] - (now - a_pub[short]) / FRESH_HOURS
            hu = users[sel]
            util = ta[hu][:, a_topic[short]] + ca[hu][:, a_clusters_col[short]]
            disp_keys = (
                b_short[None, :].astype(np.float32) + DISPLAY_PERSONAL * util + _gumbel(rng, util.shape)
            )
            m = min(cfg.display_max, n_short)
            top = np.argpartition(-disp_keys, m - 1, axis=1)[:, :m]
            n_show = np.clip(
                np.round(rng.lognormal(np.log(cfg.display_mean) - 0.18, 0.6, size=sel.size)), 2, m
            )
            n_show = n_show.astype(np.int64)
            # Keep each impression's n_show best display keys; the rest are not shown.
            order = np.argsort(-np.take_along_axis(disp_keys, top, axis=1), axis=1)
            top = np.take_along_axis(top, order, axis=1)
            shown_mask = np.arange(m)[None, :] < n_show[:, None]
            u_top = np.take_along_axis(util, top, axis=1)
            click_keys = (
                u_top
                + W_POP * a_logpop[short][top]
                + W_FRESH * np.exp(-(now - a_pub[short][top]) / FRESH_HOURS)
                + _gumbel(rng, top.shape)
            )
            click_keys[~shown_mask] = -np.inf
            n_click = np.minimum(n_show - 1, 1 + rng.poisson(0.5, size=sel.size))
            rank = np.argsort(np.argsort(-click_keys, axis=1), axis=1)
            clicked = (rank < n_click[:, None]) & shown_mask
            shuffle = np.argsort(np.where(shown_mask, rng.random(top.shape), 2.0), axis=1)
            shown_ids = np.take_along_axis(short[top], shuffle, axis=1).tolist()
            shown_lab = np.take_along_axis(clicked, shuffle, axis=1).tolist()
            t_hour = START + timedelta(days=day, hours=hour)
            for r, uid in enumerate(hu.tolist()):
                k = int(n_show[r])
                ids, labels = shown_ids[r][:k], shown_lab[r][:k]
                day_clicks.append((uid, [a for a, lab in zip(ids, labels, strict=True) if lab]))
                if split is not None:
                    h = hist_cache.get(uid)
                    if h is None:
                        h = hist_cache[uid] = " ".join([nid[a] for a in clicks[uid][-HISTORY_MAX:]])
                    when = t_hour + timedelta(seconds=int(secs[sel[r]]))
                    logs[split].rows.append((uid, when, h, ids, labels))
        for uid, ids in day_clicks:
            mine = clicks[uid]
            # A re-click of an article shown again does not repeat it in the history.
            mine.extend(a for a in ids if a not in mine[-HISTORY_MAX:])
    bar.close()

    out = Path(out_dir)
    summary = SynthSummary(size=size, seed=seed, out_dir=str(out))
    arts = (a_topic, a_cluster, a_pub, news_num)
    train_news = _write_split(out / "train", logs["train"], cat, arts, text_rng, summary, "train")
    _write_split(out / "dev", logs["dev"], cat, arts, text_rng, summary, "dev")
    dev_clicked = {a for row in logs["dev"].rows for a, lab in zip(row[3], row[4], strict=True) if lab}
    summary.cold_start_share = round(len(dev_clicked - train_news) / max(1, len(dev_clicked)), 4)
    dev_users: dict[int, bool] = {}
    for uid, _, h, _, _ in logs["dev"].rows:
        dev_users[uid] = h == ""
    summary.empty_history_share = round(sum(dev_users.values()) / max(1, len(dev_users)), 4)
    _write_truth(out / TRUTH_FILE, size, seed, cat, truth_users, news_num, a_topic, a_cluster)
    summary.seconds = round(time.perf_counter() - t0, 2)
    return summary


def _gumbel(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    """Standard Gumbel noise in float32 (half the time and memory of rng.gumbel)."""
    u = rng.random(shape, dtype=np.float32)
    return -np.log(-np.log(np.maximum(u, np.float32(1e-12))))


def _archive_history(
    rng: np.random.Generator,
    n_hist: np.ndarray,
    archive: np.ndarray,
    a_pub: np.ndarray,
    a_topic: np.ndarray,
    a_col: np.ndarray,
    a_logpop: np.ndarray,
    ta: np.ndarray,
    ca: np.ndarray,
    n_topics: int,
) -> list[list[int]]:
    """Long-term click histories from before the simulated days, by the same utility
    (topic + storyline + popularity) without freshness. Sampled in two stages, a
    group (storyline, or topic for articles without one) then an article in it, so it
    is all vectorised."""
    nu = n_hist.size
    n_cols = ca.shape[1]  # storylines + the "none" column
    group = np.where(a_col[archive] < n_cols - 1, a_col[archive], n_cols - 1 + a_topic[archive])
    n_groups = n_cols - 1 + n_topics
    g_topic = np.concatenate([np.zeros(n_cols - 1, dtype=np.int64), np.arange(n_topics)])
    g_topic[group] = a_topic[archive]
    g_col = np.minimum(np.arange(n_groups), n_cols - 1)
    w = np.exp(W_POP * a_logpop[archive])
    mass = np.bincount(group, weights=w, minlength=n_groups)
    with np.errstate(divide="ignore"):
        logits = ta[:, g_topic] + ca[:, g_col] + np.log(mass)[None, :]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    users = np.repeat(np.arange(nu), n_hist)
    # Row offsets make all rows one sorted array, so one searchsorted samples every click.
    flat = (cum + np.arange(nu)[:, None]).ravel()
    g = np.searchsorted(flat, users + rng.random(users.size), side="right") - users * n_groups
    g = np.minimum(g, n_groups - 1)
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    w_sorted = w[order]
    starts = np.searchsorted(sorted_group, np.arange(n_groups))
    ends = np.searchsorted(sorted_group, np.arange(n_groups), side="right")
    cw = np.cumsum(w_sorted)
    base = np.where(starts > 0, cw[np.maximum(starts - 1, 0)], 0.0)
    target = base[g] + rng.random(users.size) * (cw[np.maximum(ends - 1, 0)][g] - base[g])
    pos = np.minimum(np.searchsorted(cw, target, side="right"), ends[g] - 1)
    art = archive[order][pos]
    # One click per (user, article), oldest first.
    key = np.unique(users.astype(np.int64) * (a_pub.size + 1) + art)
    users_u, art_u = key // (a_pub.size + 1), key % (a_pub.size + 1)
    o = np.lexsort((a_pub[art_u], users_u))
    users_u, art_u = users_u[o], art_u[o]
    out: list[list[int]] = [[] for _ in range(nu)]
    bounds = np.searchsorted(users_u, np.arange(nu + 1))
    art_l = art_u.tolist()
    for u in np.flatnonzero(n_hist).tolist():
        out[u] = art_l[bounds[u] : bounds[u + 1]]
    return out


def _write_split(
    split_dir: Path,
    log: _Log,
    cat: Catalogue,
    arts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    text_rng: np.random.Generator,
    summary: SynthSummary,
    name: str,
) -> set[int]:
    """Write one split; returns the article indices in its news.tsv.

    `arts` is (topic, storyline, publish hour, news number) per article.
    """
    a_topic, a_cluster, a_pub, news_num = arts
    split_dir.mkdir(parents=True, exist_ok=True)
    log.rows.sort(key=lambda row: row[1])  # stable: equal times keep simulation order
    beh_lines: list[str] = []
    used: set[int] = set()
    nid = [f"N{x}" for x in news_num.tolist()]
    tok = ([f"{x}-0" for x in nid], [f"{x}-1" for x in nid])
    pos = {x: i for i, x in enumerate(nid)}
    seen_hist: set[str] = set()
    n_clicks = 0
    for iid, (uid, t, hist, ids, labels) in enumerate(log.rows, start=1):
        used.update(ids)
        n_clicks += sum(labels)
        imps = " ".join([tok[lab][a] for a, lab in zip(ids, labels, strict=True)])
        beh_lines.append(f"{iid}\tU{uid + 1}\t{format_time(t)}\t{hist}\t{imps}\n")
        if hist and hist not in seen_hist:
            seen_hist.add(hist)
            used.update(pos[h] for h in hist.split(" "))
    (split_dir / "behaviors.tsv").write_text("".join(beh_lines), encoding="utf-8")

    news_lines: list[str] = []
    ent_used: dict[str, None] = {}
    for a in sorted(used):
        ti = int(a_topic[a])
        c = int(a_cluster[a])
        cross = bool(text_rng.random() < 0.12)
        empty_abs = bool(text_rng.random() < 0.03)
        title, abstract, tj, aj, eids = article_text(text_rng, ti, c, cat, cross, empty_abs, float(a_pub[a]))
        ent_used.update(dict.fromkeys(eids))
        topic = V.TOPICS[ti]
        sub = (
            cat.cluster_subcat[c]
            if c >= 0
            else topic.subcategories[int(text_rng.integers(len(topic.subcategories)))]
        )
        url = f"https://synth.newsrec.invalid/news/{nid[a]}.html"
        news_lines.append("\t".join((nid[a], topic.category, sub, title, abstract, url, tj, aj)) + "\n")
    (split_dir / "news.tsv").write_text("".join(news_lines), encoding="utf-8")

    by_qid = {e.wikidata_id: i for i, e in enumerate(cat.entities)}
    vec_lines = [
        _vec_line(q, cat.entity_vectors[by_qid[q]]) for q in sorted(ent_used, key=lambda q: by_qid[q])
    ]
    (split_dir / "entity_embedding.vec").write_text("".join(vec_lines), encoding="utf-8")
    rel_lines = [_vec_line(r, v) for r, v in zip(cat.relation_ids, cat.relation_vectors, strict=True)]
    (split_dir / "relation_embedding.vec").write_text("".join(rel_lines), encoding="utf-8")

    summary.news[name] = len(news_lines)
    summary.users[name] = len({row[0] for row in log.rows})
    summary.impressions[name] = len(log.rows)
    summary.clicks[name] = n_clicks
    summary.entities[name] = len(vec_lines)
    return used


def _vec_line(key: str, vec: np.ndarray) -> str:
    # MIND's .vec lines end with a tab before the newline.
    return key + "\t" + "\t".join(f"{x:.6f}" for x in vec.tolist()) + "\t\n"


def _write_truth(
    path: Path,
    size: str,
    seed: int,
    cat: Catalogue,
    users: list[dict[str, list[int]]],
    news_num: np.ndarray,
    a_topic: np.ndarray,
    a_cluster: np.ndarray,
) -> None:
    """The latent structure (for tests and analysis; models must not read it)."""
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
        "users": {f"U{u + 1}": d for u, d in enumerate(users)},
        "news": {f"N{news_num[a]}": [int(a_topic[a]), int(a_cluster[a])] for a in range(news_num.size)},
    }
    path.write_text(json.dumps(truth, separators=(",", ":")), encoding="utf-8")
