"""Embed every article of one or more news.tsv files into an embedding directory.

Flow: read and union the news ids -> one text per distinct string (identical texts are
sent once) -> cache lookup -> sort what is missing by token count (less padding for a
local model) -> batches bounded by count and token budget -> a thread pool sends them
under the provider's rate limit and retries -> every finished batch is committed to
the cache at once -> the table is written only when every text has a vector, into a
staging directory swapped in when complete and sealed by a manifest (`embed.store`).

A batch that fails for good is reported (ids and reason); nothing is ever filled with
zeros, and the next run sends only what is still missing.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from newsrec.atomic import MANIFEST_FILE, clean_stale
from newsrec.data import read_news
from newsrec.embed.cache import EmbeddingCache, cache_key
from newsrec.embed.config import PrecomputeConfig
from newsrec.embed.costs import estimate_cost
from newsrec.embed.providers import EmbeddingProvider, build_provider
from newsrec.embed.store import (
    FAILURES_FILE,
    IDS_FILE,
    METADATA_FILE,
    OWNED,
    VECTORS_FILE,
    EmbeddingTable,
    save_embeddings,
)
from newsrec.errors import DataError, NewsrecError
from newsrec.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class FailedBatch:
    ids: list[str]
    error: str
    status: int | None = None


@dataclass
class PrecomputeReport:
    ok: bool
    out_dir: str
    provider: str
    model: str
    dimension: int | None
    count: int = 0
    unique_texts: int = 0
    duplicate_texts: int = 0
    cache_hits: int = 0
    embedded_texts: int = 0
    total_tokens: int = 0
    tokens_sent: int = 0
    estimated_cost_usd: float | None = None
    full_cost_usd: float | None = None
    cost_note: str = ""
    truncated: int = 0
    empty_texts: int = 0
    bad_rows: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    duration_s: float = 0.0
    news_files: list[str] = field(default_factory=list)
    token_counting: str = ""
    failures: list[FailedBatch] = field(default_factory=list)

    @property
    def failed_ids(self) -> list[str]:
        return [i for f in self.failures for i in f.ids]

    def metadata(self) -> dict[str, Any]:
        """The metadata.json of the embedding directory."""
        meta = asdict(self)
        meta.pop("failures")
        meta.pop("out_dir")
        meta["failures"] = len(self.failed_ids)
        return meta


def _batches(order: list[int], tokens: list[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Consecutive runs of `order` with at most `batch_size` items and `max_tokens` tokens
    (a single text over the budget still gets its own batch)."""
    out: list[list[int]] = []
    cur: list[int] = []
    cur_tokens = 0
    for i in order:
        if cur and (len(cur) >= batch_size or cur_tokens + tokens[i] > max_tokens):
            out.append(cur)
            cur, cur_tokens = [], 0
        cur.append(i)
        cur_tokens += tokens[i]
    if cur:
        out.append(cur)
    return out


def _read_union(news_paths: list[Path], report: PrecomputeReport) -> dict[str, str]:
    texts: dict[str, str] = {}
    for path in news_paths:
        articles, bad = read_news(path)
        if not articles:  # a table of shape (0, 0) would train a model with text_dim 0
            where = f"; first bad row {bad[0].file}:{bad[0].line} ({bad[0].reason})" if bad else ""
            raise DataError(f"{path}: no usable news rows{where}")
        report.bad_rows += len(bad)
        for bad_row in bad[:5]:
            log.warning("%s:%d skipped (%s) %s", bad_row.file, bad_row.line, bad_row.reason, bad_row.detail)
        for art in articles:
            if art.news_id in texts:  # train and dev share articles; the first file's copy wins
                continue
            texts[art.news_id] = art.text()
            if not art.title.strip() and not art.abstract.strip():
                report.empty_texts += 1
    return texts


def precompute(
    news_paths: list[Path] | list[str],
    config: PrecomputeConfig,
    out_dir: Path | str,
    provider: EmbeddingProvider | None = None,
) -> PrecomputeReport:
    """Embed the union of news ids in `news_paths` into `out_dir` (see module docstring)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    paths = [Path(p) for p in news_paths]
    report = PrecomputeReport(ok=False, out_dir=str(out_dir), provider="", model="", dimension=None)
    report.news_files = [str(p) for p in paths]
    id_text = _read_union(paths, report)  # before the provider: a bad path fails fast, not after a model load
    clean_stale(out_dir, OWNED)  # a killed run's staging dir: its cache goes back, the rest away
    provider = provider or build_provider(config.provider)
    report.provider, report.model = provider.name, provider.model
    dims_key = getattr(provider, "dimensions", None)
    report.token_counting = getattr(provider, "token_counting", "model tokenizer")
    report.count = len(id_text)

    unique = list(dict.fromkeys(id_text.values()))
    report.unique_texts = len(unique)
    report.duplicate_texts = report.count - report.unique_texts
    keys = [cache_key(provider.name, provider.model, dims_key, t) for t in unique]
    tokens = provider.count_tokens(unique)
    report.truncated = sum(n > provider.max_tokens for n in tokens)
    clipped = [min(n, provider.max_tokens) for n in tokens]
    report.total_tokens = sum(clipped)

    cache = EmbeddingCache(config.cache_dir or out_dir / "cache") if config.use_cache else None
    memory: dict[str, np.ndarray] = {}
    try:
        have = set(cache.get_many(keys)) if cache else set()
        report.cache_hits = len(have)
        todo = [i for i, k in enumerate(keys) if k not in have]
        todo.sort(key=lambda i: clipped[i])
        batches = _batches(todo, clipped, config.batch_size, config.max_batch_tokens)
        workers = max(1, min(config.concurrency, provider.max_concurrency))
        ids_of: dict[str, list[str]] = {}
        for news_id, text in id_text.items():
            ids_of.setdefault(text, []).append(news_id)

        def run(batch: list[int]) -> tuple[list[int], np.ndarray, int]:
            result = provider.embed([unique[i] for i in batch])
            if cache is not None:
                cache.put_batch(
                    [keys[i] for i in batch],
                    result.vectors,
                    provider=provider.name,
                    model=provider.model,
                    tokens=result.billed_tokens,
                )
            return batch, result.vectors, result.billed_tokens

        bar = progress_bar(
            total=len(todo), unit="text", desc="embed", enabled=config.progress, dynamic_ncols=True
        )
        with bar, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed") as pool:
            pending: dict[Future[tuple[list[int], np.ndarray, int]], list[int]] = {}
            queue = iter(batches)
            # Keep only a few batches queued per worker so an interrupt loses little work.
            for batch in queue:
                pending[pool.submit(run, batch)] = batch
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    batch = pending.pop(fut)
                    try:
                        _, vectors, billed = fut.result()
                    except NewsrecError as exc:
                        failed = [nid for i in batch for nid in ids_of[unique[i]]]
                        report.failures.append(FailedBatch(failed, str(exc), getattr(exc, "status", None)))
                        log.error("batch of %d texts failed: %s", len(batch), exc)
                    else:
                        report.tokens_sent += billed
                        report.embedded_texts += len(batch)
                        if cache is None:
                            memory.update({keys[i]: v for i, v in zip(batch, vectors, strict=True)})
                    bar.update(len(batch))
                    nxt = next(queue, None)
                    if nxt is not None:
                        pending[pool.submit(run, nxt)] = nxt
        stats = getattr(provider, "stats", None)
        if stats is not None:
            report.requests, report.retries, report.rate_limited = (
                stats.requests,
                stats.retries,
                stats.rate_limited,
            )
        else:
            report.requests = len(batches)
        cost = estimate_cost(provider.name, provider.model, report.tokens_sent)
        report.estimated_cost_usd, report.cost_note = cost.usd, cost.note
        report.full_cost_usd = estimate_cost(provider.name, provider.model, report.total_tokens).usd
        report.duration_s = round(time.perf_counter() - started, 3)

        if report.failures:
            _write_failures(out_dir, report)
            return report
        vectors_by_key = cache.get_many(keys) if cache else memory
        ids = list(id_text)
        key_of_text = dict(zip(unique, keys, strict=True))
        matrix = np.stack([vectors_by_key[key_of_text[id_text[i]]] for i in ids])
        report.dimension = int(matrix.shape[1])
        report.ok = True
    finally:
        if cache is not None:
            cache.close()  # before the swap: the cache directory moves into the new table dir
    save_embeddings(out_dir, EmbeddingTable(ids, matrix.astype(np.float32), report.metadata()))
    return report


def _write_failures(out_dir: Path, report: PrecomputeReport) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    # A table left by an earlier run would not match these inputs: remove it so that
    # nothing downstream loads an incomplete or stale table.
    for name in (MANIFEST_FILE, METADATA_FILE, IDS_FILE, VECTORS_FILE):
        (out_dir / name).unlink(missing_ok=True)
    payload = {
        "failed_ids": report.failed_ids,
        "batches": [asdict(f) for f in report.failures],
        "embedded_this_run": report.embedded_texts,
        "cache_hits": report.cache_hits,
        "hint": "everything else is cached; run the same command again to embed only what is missing",
    }
    (out_dir / FAILURES_FILE).write_text(json.dumps(payload, indent=2))
