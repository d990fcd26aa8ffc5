"""Milvus implementation of `VectorIndex`: one collection per model version, an alias per model.

`MilvusIndex.from_uri(uri)`: a local file path means Milvus Lite (the milvus-lite 2.5.1
C++ engine, started by pymilvus in a subprocess), `http(s)://...` a Milvus server.
pymilvus is imported lazily and the client is built on first use, never at import.

Aliases: a Milvus server has native aliases (`create_alias`/`alter_alias`, atomic on
the server). Milvus Lite 2.5.1 answers UNIMPLEMENTED to every alias call, so on Lite the
alias is a row of a small bookkeeping collection (`newsrec_meta`), replaced by one
`upsert`; readers resolve it once per search, so a search sees one whole version. The
same collection records which versions finished building (with a fingerprint of their
input), which is what makes `build_version` idempotent.

Idempotency: building (alias, version) again with the same records is a no-op (it only
re-points the alias). A half-built or differently-built collection of that version is
dropped and rebuilt cleanly, unless the alias currently serves it: then the call fails,
because rebuilding in place would show readers a partial collection.

Timeouts: every pymilvus call goes through `_call`, which bounds it by `timeout_s` (the
gRPC deadline of a read, and how long an unreachable Milvus is retried) or, for the slow
steps of a build (insert, flush, load...), by `build_timeout_s`. pymilvus alone would retry
an unreachable server 75 times with back-off (about 210 s) unless `timeout` is an int.
A Milvus that is down or does not answer in time raises `Unavailable`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from newsrec.errors import DataError, InvalidInput, NotFound, Unavailable
from newsrec.index.articles import MAX_FIELD_BYTES, StoredArticle
from newsrec.index.base import HitColumns, NewsRecord, SearchFilters, SearchHit
from newsrec.progress import progress_bar

META_COLLECTION = "newsrec_meta"
# Upserted articles in full (newsrec.index.articles), one row per (alias, news id).
ARTICLES_COLLECTION = "newsrec_articles"
# HNSW needs a Milvus server: Milvus Lite 2.5.1 builds only FLAT, IVF_FLAT and AUTOINDEX.
INDEX_TYPES = ("FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX")
LITE_INDEX_TYPES = ("FLAT", "IVF_FLAT", "AUTOINDEX")
MAX_TOPK = 16384
# After an upsert through this index, its searches on a server are Strong for this long
# (longer than Milvus' default Bounded staleness of a few seconds), then Bounded again.
READ_YOUR_WRITES_S = 10.0
_OUTPUT_FIELDS = ["category", "subcategory", "published_at", "model_version"]
_STR_LEN = 256
# gRPC codes meaning "Milvus did not answer" (down, restarting, or too slow), as opposed to
# an answer refusing the request. Matched by name: `newsrec/` does not import grpc.
_UNREACHABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
_SCHEMA_CACHED = frozenset({"get", "upsert", "insert"})  # MilvusClient methods using pymilvus' schema cache


def sanitize(name: str) -> str:
    """Milvus names: letters, digits and underscores only."""
    cleaned = re.sub(r"[^A-Za-z0-9_]", "_", name.strip())
    if not cleaned:
        raise InvalidInput(f"name {name!r} has no usable characters")
    return cleaned


def alias_name(model: str) -> str:
    return f"news_{sanitize(model)}"


def collection_name(alias: str, version: str) -> str:
    """`news_<model>_<version>` for alias `news_<model>`."""
    return f"{sanitize(alias)}_{sanitize(version)}"


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """Milvus index type and its build/search knobs."""

    index_type: str = "FLAT"
    nlist: int = 1024  # IVF_FLAT: number of clusters
    nprobe: int = 64  # IVF_FLAT: clusters scanned per query
    m: int = 16  # HNSW: graph degree
    ef_construction: int = 200  # HNSW: candidate list while building
    ef: int = 128  # HNSW: candidate list while searching (raised to k: Milvus requires ef >= k)

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise InvalidInput(f"index type {self.index_type!r}: choose one of {', '.join(INDEX_TYPES)}")

    def build_params(self) -> dict[str, Any]:
        if self.index_type == "IVF_FLAT":
            return {"nlist": self.nlist}
        if self.index_type == "HNSW":
            return {"M": self.m, "efConstruction": self.ef_construction}
        return {}

    def search_params(self, k: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.index_type == "IVF_FLAT":
            params = {"nprobe": self.nprobe}
        elif self.index_type == "HNSW":
            params = {"ef": max(self.ef, k)}
        return {"metric_type": "IP", "params": params}


def fingerprint(records: Sequence[NewsRecord], spec: IndexSpec) -> str:
    """Content hash of a build input (ids, vectors, metadata, index spec)."""
    h = hashlib.sha256(repr(spec).encode())
    for r in records:
        h.update(
            f"{r.news_id}\0{r.category}\0{r.subcategory}\0{r.published_at}\0{r.model_version}\0".encode()
        )
        h.update(np.ascontiguousarray(r.vector, dtype=np.float32).tobytes())
    return h.hexdigest()


def filter_expr(filters: SearchFilters | None) -> str:
    """Milvus boolean expression for `filters` (evaluated inside the search)."""
    if filters is None:
        return ""
    parts = []
    if filters.exclude_ids:
        parts.append(f"news_id not in {json.dumps(list(filters.exclude_ids))}")
    if filters.categories:
        parts.append(f"category in {json.dumps(list(filters.categories))}")
    if filters.published_after is not None:
        parts.append(f"published_at > {int(filters.published_after)}")
    return " and ".join(parts)


class MilvusIndex:
    """`VectorIndex` over a Milvus server or a Milvus Lite file."""

    def __init__(
        self,
        uri: str,
        *,
        client: Any = None,
        token: str = "",
        spec: IndexSpec | None = None,
        keep_versions: int = 2,
        batch_size: int = 5000,
        alias_ttl_s: float = 1.0,
        progress: bool = False,
        timeout_s: float = 2.0,
        build_timeout_s: float = 600.0,
    ) -> None:
        if timeout_s <= 0 or build_timeout_s <= 0:
            raise InvalidInput(f"timeouts must be positive, got {timeout_s} and {build_timeout_s}")
        self.uri = uri
        self.lite = not uri.startswith(("http://", "https://", "tcp://", "grpc://"))
        self.spec = spec or IndexSpec()
        if self.lite and self.spec.index_type not in LITE_INDEX_TYPES:
            raise InvalidInput(
                f"index type {self.spec.index_type}: {self.spec.index_type} needs a Milvus server "
                f"(http://host:19530); Milvus Lite builds {', '.join(LITE_INDEX_TYPES)}"
            )
        self.keep_versions = max(1, keep_versions)  # the previous version stays for in-flight readers
        self.batch_size = batch_size
        self.alias_ttl_s = alias_ttl_s
        self.progress = progress
        self.timeout_s = timeout_s  # reads and upserts; also the retry window of any call
        self.build_timeout_s = build_timeout_s  # one slow build step (insert batch, flush, load)
        self._token = token
        self._client = client
        self._lock = threading.RLock()
        self._alias_cache: dict[str, tuple[str, float]] = {}
        self._flips = 0  # bumped by every alias flip in this process; guards the cache
        self._meta_ready = False
        self._articles_ready = False
        # Searches on a server: Bounded consistency, except shortly after this process wrote
        # to the alias (an upsert), when they are Strong so the write is visible at once.
        # Strong on every search waited for the next time tick: ~200 ms p50 (measured,
        # bench/retrieval_server.py). (pymilvus' Session level tracks writes per collection
        # name, and searches go through the alias: it did not see the upsert.)
        # Lite has no time ticks: left at the collection's level.
        self._last_write: dict[str, float] = {}

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> MilvusIndex:
        """A file path → Milvus Lite; `http(s)://host:port` → a Milvus server. Connects lazily."""
        if not uri:
            raise InvalidInput("milvus uri is empty")
        return cls(uri, **kwargs)

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                from pymilvus import MilvusClient  # lazy: pymilvus starts gRPC machinery on import

                try:
                    self._client = MilvusClient(uri=self.uri, token=self._token)
                except Exception as exc:
                    raise Unavailable(f"cannot open Milvus at {self.uri}: {exc}") from exc
            return self._client

    def close(self, stop_lite: bool = False) -> None:
        """Close the client. `stop_lite` also stops the Milvus Lite server process of this
        file (pymilvus keeps one per file until the process exits), freeing the file for
        another process; other clients of the same file in this process stop working."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
                self._meta_ready = self._articles_ready = False
            if stop_lite and self.lite:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(self.uri)

    def _call(self, method: str, *args: Any, slow: bool = False, **kwargs: Any) -> Any:
        """`client.<method>(*args, **kwargs)` within `timeout_s` (`build_timeout_s` if `slow`).

        pymilvus bounds its own retries by `timeout` only when it is an int; a float gets 75
        tries with back-off (about 210 s against a dead server). So each try here is a single
        pymilvus attempt (`retry_times=0`) whose gRPC deadline is the time left, and an
        unreachable Milvus is retried with a short back-off for at most `timeout_s`.
        Errors that are answers (bad request, missing collection) pass through unchanged.
        """
        start = time.monotonic()
        deadline = start + (self.build_timeout_s if slow else self.timeout_s)
        retry_until = min(deadline, start + self.timeout_s)
        back_off = 0.05
        while True:
            left = max(deadline - time.monotonic(), 0.001)
            try:
                fn = getattr(self.client, method)
                if method in _SCHEMA_CACHED:
                    self._cache_schema(args[0], left)
                return fn(*args, timeout=left, retry_times=0, **kwargs)
            except Exception as exc:
                if type(exc).__name__ == "ConnectionNotExistException":
                    # pymilvus dropped its connection (seen after a server restart): every later
                    # call would fail with "should create connection first". Reconnect.
                    self._reset_client()
                elif not _unreachable(exc):
                    raise
                if time.monotonic() + back_off >= retry_until:
                    raise _unavailable(exc, f"{method} on {self.uri}", start) from exc
            time.sleep(back_off)
            back_off = min(2 * back_off, 0.5)

    def _reset_client(self) -> None:
        """Forget the client (closing what is left of it); the next call builds a new one."""
        with self._lock:
            old, self._client, self._meta_ready = self._client, None, False
            self._articles_ready = False
        try:
            if old is not None:
                old.close()
        except Exception:  # a half-dead client may fail to close; it is dropped anyway
            pass

    def _cache_schema(self, coll: str, timeout: float) -> None:
        """Put the schema of `coll` in pymilvus' schema cache with a bounded describe.

        `get`, `upsert` and `insert` look the schema up there and, on a miss, describe it
        with the default retries (about 210 s against a dead server), ignoring `retry_times`.
        Private pymilvus 2.5 API, so anything unexpected leaves the cache to pymilvus."""
        conn: Any = getattr(self.client, "_get_connection", lambda: None)()
        cache = getattr(conn, "schema_cache", None)
        fill = getattr(conn, "_get_schema_from_cache_or_remote", None)
        if not isinstance(cache, dict) or coll in cache or fill is None:
            return
        schema = conn.describe_collection(coll, timeout=timeout, retry_times=0)
        fill(coll, schema=schema)

    # -- bookkeeping collection -------------------------------------------------------------

    def _ensure_meta(self) -> None:
        if self._meta_ready:
            return
        self._ensure_keyed(META_COLLECTION, 512, {"value": 8192})
        self._meta_ready = True

    def _ensure_keyed(self, name: str, key_len: int, fields: dict[str, int]) -> None:
        """A Strong, loaded collection of rows by a VARCHAR `key` with VARCHAR `fields`
        (name -> max length), created once; Milvus requires one vector field, so each has a
        2-d dummy vector under a FLAT index."""
        from pymilvus import DataType

        c = self.client
        if not self._call("has_collection", name):
            schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=key_len)
            for field, length in fields.items():
                schema.add_field(field, DataType.VARCHAR, max_length=length)
            schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
            params = c.prepare_index_params()
            params.add_index(field_name="v", index_type="FLAT", metric_type="L2")
            self._call(
                "create_collection",
                name,
                schema=schema,
                index_params=params,
                consistency_level="Strong",
                slow=True,
            )
        self._call("load_collection", name, slow=True)

    def _meta_get(self, key: str) -> str | None:
        self._ensure_meta()
        rows = self._call("get", META_COLLECTION, ids=[key], output_fields=["value"])
        return str(rows[0]["value"]) if rows else None

    def _meta_set(self, key: str, value: str) -> None:
        self._ensure_meta()
        self._call("upsert", META_COLLECTION, [{"key": key, "value": value, "v": [0.0, 0.0]}])

    def _meta_delete(self, key: str) -> None:
        self._ensure_meta()
        self._call("delete", META_COLLECTION, ids=[key])

    # -- upserted articles -----------------------------------------------------------------

    def _ensure_articles(self) -> None:
        """The articles collection (created once, Strong, loaded). Its rows live in the same
        Milvus as the vectors, so they are as durable as the vectors and reach every replica."""
        if self._articles_ready:
            return
        fields = {
            "alias": _STR_LEN,
            **dict.fromkeys(("title", "abstract", "entities", "value"), MAX_FIELD_BYTES),
        }
        self._ensure_keyed(ARTICLES_COLLECTION, 2 * _STR_LEN + 1, fields)
        self._articles_ready = True

    def put_articles(self, alias: str, articles: Sequence[StoredArticle]) -> None:
        """Insert or replace upserted articles of `alias` (one Milvus upsert)."""
        if not articles:
            return
        alias = sanitize(alias)
        rows = [
            {"key": f"{alias}/{a.news_id}", "alias": alias, **a.fields(), "v": [0.0, 0.0]} for a in articles
        ]
        self._ensure_articles()
        self._call("upsert", ARTICLES_COLLECTION, rows)

    def load_articles(self, alias: str) -> tuple[list[StoredArticle], list[str]]:
        """Every stored article of `alias`, verified; a damaged row is left out and named."""
        alias = sanitize(alias)
        self._ensure_articles()
        it = self._call(
            "query_iterator",
            ARTICLES_COLLECTION,
            batch_size=self.batch_size,
            filter=f'alias == "{alias}"',
            output_fields=["key", "title", "abstract", "entities", "value"],
        )
        out: list[StoredArticle] = []
        errors: list[str] = []
        start = time.monotonic()
        try:
            while batch := _next_batch(it, f"query_iterator on {self.uri}", start):
                for row in batch:
                    where = f"{self.uri} {ARTICLES_COLLECTION} row {row.get('key')!r}"
                    try:
                        out.append(StoredArticle.from_fields(row, where))
                    except DataError as exc:
                        errors.append(str(exc))
        finally:
            it.close()
        return out, errors

    # -- aliases --------------------------------------------------------------------------

    def resolve_alias(self, alias: str) -> str:
        now = time.monotonic()
        cached = self._alias_cache.get(alias)
        if cached is not None and now - cached[1] < self.alias_ttl_s:
            return cached[0]
        flips = self._flips
        target: str | None
        if self.lite:
            target = self._meta_get(f"alias:{alias}")
        else:
            try:
                target = str(self._call("describe_alias", alias)["collection_name"])
            except Unavailable:
                raise  # a dead server is not a missing alias (that would trigger a rebuild)
            except Exception as exc:
                # Only "alias not found" is a missing alias; any other answer (a server still
                # recovering after a restart, a permission error) must not look like one,
                # or a caller would rebuild (or a mirror give up on) a collection that exists.
                if "not found" not in str(exc) and "not exist" not in str(exc):
                    raise Unavailable(f"describe_alias {alias} on {self.uri}: {exc}") from exc
                target = None
        if not target:
            raise NotFound(f"Milvus alias {alias!r} does not exist at {self.uri} (no version built yet?)")
        with self._lock:
            if flips == self._flips:  # a flip during the lookup makes `target` stale: do not cache it
                self._alias_cache[alias] = (target, now)
        return target

    def _try_resolve(self, alias: str) -> str | None:
        try:
            return self.resolve_alias(alias)
        except NotFound:
            return None

    def _flip_alias(self, alias: str, collection: str) -> None:
        with self._lock:
            if self.lite:
                self._meta_set(f"alias:{alias}", collection)
            elif self._try_resolve(alias) is None:
                self._call("create_alias", collection, alias)
            else:
                self._call("alter_alias", collection, alias)
            self._flips += 1
            self._alias_cache[alias] = (collection, time.monotonic())

    # -- build ------------------------------------------------------------------------------

    def build_version(self, alias: str, version: str, records: Sequence[NewsRecord]) -> str:
        """Build, load and check the collection of `version`, then flip `alias` to it."""
        alias = sanitize(alias)
        coll = collection_name(alias, version)
        dim = _check_records(records)
        fp = fingerprint(records, self.spec)
        with self._lock:
            marker = self._meta_get(f"built:{coll}")
            exists = bool(self._call("has_collection", coll))
            if marker and json.loads(marker)["fingerprint"] == fp and exists:
                self._call("load_collection", coll, slow=True)
                self._flip_alias(alias, coll)
                return coll  # same input, already built: no-op
            if exists:
                if self._try_resolve(alias) == coll:
                    raise InvalidInput(
                        f"collection {coll} is serving alias {alias} and was built from different records; "
                        "build a new version instead of rebuilding the served one"
                    )
                self._call("drop_collection", coll, slow=True)  # half-built or stale: rebuild
            self._meta_delete(f"built:{coll}")
            self._create(coll, dim)
            try:
                self._insert(coll, records)
                self._call("flush", coll, slow=True)
                self._wait_indexed(coll, len(records))
                self._call("load_collection", coll, slow=True)
                self._check(coll, records)
            except BaseException:
                self._call("drop_collection", coll, slow=True)
                raise
            info = {"fingerprint": fp, "alias": alias, "version": version, "count": len(records)}
            self._meta_set(f"built:{coll}", json.dumps({**info, "built_at": time.time()}))
            self._flip_alias(alias, coll)
            self._drop_old_versions(alias, keep=coll)
        return coll

    def _create(self, coll: str, dim: int) -> None:
        from pymilvus import DataType

        c = self.client
        schema = c.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("news_id", DataType.VARCHAR, is_primary=True, max_length=_STR_LEN)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("category", DataType.VARCHAR, max_length=_STR_LEN)
        schema.add_field("subcategory", DataType.VARCHAR, max_length=_STR_LEN)
        schema.add_field("published_at", DataType.INT64)
        schema.add_field("model_version", DataType.VARCHAR, max_length=_STR_LEN)
        params = c.prepare_index_params()
        params.add_index(
            field_name="vector",
            index_type=self.spec.index_type,
            metric_type="IP",
            params=self.spec.build_params(),
        )
        self._call(
            "create_collection",
            coll,
            schema=schema,
            index_params=params,
            consistency_level="Strong",
            slow=True,
        )

    def _wait_indexed(self, coll: str, rows: int) -> None:
        """Wait (up to `build_timeout_s`) until a server has indexed every row of `coll`.

        A Milvus server builds the index of flushed segments asynchronously and meanwhile
        searches them brute force: flipping the alias before the index is done would serve
        a new version at exact-scan cost (and an HNSW build would never be measured).
        Milvus Lite indexes synchronously and reports no row counts: nothing to wait for."""
        if self.lite:
            return
        deadline = time.monotonic() + self.build_timeout_s
        while True:
            info = self._call("describe_index", coll, "vector", slow=True) or {}
            indexed, pending = info.get("indexed_rows"), info.get("pending_index_rows")
            if indexed is None or (int(indexed) >= rows and not int(pending or 0)):
                return
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"collection {coll}: index not built within {self.build_timeout_s:.0f} s "
                    f"({indexed}/{rows} rows indexed)"
                )
            time.sleep(0.2)

    def _insert(self, coll: str, records: Sequence[NewsRecord]) -> None:
        bar = progress_bar(total=len(records), desc=f"insert {coll}", unit="row", enabled=self.progress)
        for start in range(0, len(records), self.batch_size):
            batch = records[start : start + self.batch_size]
            self._call("insert", coll, [_row(r) for r in batch], slow=True)
            bar.update(len(batch))
        bar.close()

    def _check(self, coll: str, records: Sequence[NewsRecord]) -> None:
        """Row count equals the input and a sample of rows finds itself."""
        got = self._count(coll, slow=True)
        if got != len(records):
            raise Unavailable(f"collection {coll}: {got} rows after insert, expected {len(records)}")
        rng = np.random.default_rng(0)
        sample = [records[int(i)] for i in rng.choice(len(records), size=min(5, len(records)), replace=False)]
        res = self._search(coll, np.stack([r.vector for r in sample]), 10, "", slow=True)
        for r, hits in zip(sample, res, strict=True):
            if r.news_id not in {h.news_id for h in hits}:
                raise Unavailable(f"collection {coll}: sample row {r.news_id} not found by its own vector")

    def versions(self, alias: str) -> list[dict[str, Any]]:
        """Built versions behind `alias` (from the bookkeeping rows), oldest first."""
        self._ensure_meta()
        rows = self._call(
            "query", META_COLLECTION, filter='key like "built:%"', output_fields=["key", "value"]
        )
        out = []
        for row in rows:
            info = json.loads(row["value"])
            if info.get("alias") == sanitize(alias):
                out.append({**info, "collection": row["key"].removeprefix("built:")})
        return sorted(out, key=lambda i: float(i["built_at"]))

    def _drop_old_versions(self, alias: str, keep: str) -> None:
        old = [v["collection"] for v in self.versions(alias) if v["collection"] != keep]
        for coll in old[: max(0, len(old) - (self.keep_versions - 1))]:
            self._call("drop_collection", coll, slow=True)
            self._meta_delete(f"built:{coll}")

    # -- serving ----------------------------------------------------------------------------

    def upsert(self, alias: str, records: Sequence[NewsRecord]) -> None:
        if not records:
            return
        coll = self.resolve_alias(alias)
        _check_records(records)
        self._call("upsert", coll, [_row(r) for r in records])
        self._last_write[sanitize(alias)] = time.monotonic()

    def search(
        self, alias: str, vectors: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> list[list[SearchHit]]:
        if not 0 < k <= MAX_TOPK:
            raise InvalidInput(f"k={k}: must be between 1 and {MAX_TOPK}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise InvalidInput(f"query vectors must have shape (n, dim), got {vectors.shape}")
        expr = filter_expr(filters)
        if not self.lite:
            wrote = time.monotonic() - self._last_write.get(alias, -1e9) < READ_YOUR_WRITES_S
            level = "Strong" if wrote else "Bounded"
            return self._search(
                alias, vectors, k, expr, level=level
            )  # the server resolves its alias atomically
        coll = self.resolve_alias(alias)
        try:
            return self._search(coll, vectors, k, expr)
        except Unavailable:
            raise
        except Exception as exc:
            # The collection was dropped (a version two flips old) between resolving the
            # alias and searching it, e.g. by another process: resolve again, once.
            if "not found" not in str(exc) and "not exist" not in str(exc):
                raise
            self._alias_cache.pop(alias, None)
            return self._search(self.resolve_alias(alias), vectors, k, expr)

    def search_columns(
        self, alias: str, vector: np.ndarray, k: int, filters: SearchFilters | None = None
    ) -> HitColumns:
        return HitColumns.from_hits(self.search(alias, np.asarray(vector)[None, :], k, filters)[0])

    def _search(
        self, coll: str, vectors: np.ndarray, k: int, expr: str, slow: bool = False, level: str = ""
    ) -> list[list[SearchHit]]:
        res = self._call(
            "search",
            coll,
            data=[v.tolist() for v in vectors],
            limit=k,
            filter=expr,
            output_fields=_OUTPUT_FIELDS,
            search_params=self.spec.search_params(k),
            slow=slow,
            **({"consistency_level": level} if level else {}),
        )
        return [
            [
                SearchHit(
                    news_id=str(h["id"]),
                    score=float(h["distance"]),
                    category=str(h["entity"]["category"]),
                    subcategory=str(h["entity"]["subcategory"]),
                    published_at=int(h["entity"]["published_at"]),
                    model_version=str(h["entity"]["model_version"]),
                )
                for h in hits
            ]
            for hits in res
        ]

    def count(self, alias: str) -> int:
        return self._count(self.resolve_alias(alias))

    def _count(self, coll: str, slow: bool = False) -> int:
        rows = self._call("query", coll, filter="", output_fields=["count(*)"], slow=slow)
        return int(rows[0]["count(*)"])

    def fetch_all(self, alias: str) -> tuple[str, list[NewsRecord]]:
        """Every row behind `alias` (collection name, records): feeds an in-memory mirror.
        Each batch is one query with a deadline of `timeout_s` (the iterator keeps the
        timeout and `retry_times` it was opened with)."""
        coll = self.resolve_alias(alias)
        it = self._call(
            "query_iterator",
            coll,
            batch_size=self.batch_size,
            output_fields=["news_id", "vector", *_OUTPUT_FIELDS],
        )
        out: list[NewsRecord] = []
        start = time.monotonic()
        try:
            while batch := _next_batch(it, f"query_iterator on {self.uri}", start):
                out.extend(
                    NewsRecord(
                        news_id=str(r["news_id"]),
                        vector=np.asarray(r["vector"], dtype=np.float32),
                        category=str(r["category"]),
                        subcategory=str(r["subcategory"]),
                        published_at=int(r["published_at"]),
                        model_version=str(r["model_version"]),
                    )
                    for r in batch
                )
        finally:
            it.close()
        return coll, out


def _next_batch(it: Any, what: str, start: float) -> list[dict[str, Any]]:
    """The next batch of a pymilvus query iterator; Milvus not answering is `Unavailable`."""
    try:
        return list(it.next())
    except Exception as exc:
        if _unreachable(exc):
            raise _unavailable(exc, what, start) from exc
        raise


def _unreachable(exc: BaseException) -> bool:
    """Milvus did not answer (down or too slow), as opposed to answering with an error."""
    status = _grpc_status(exc)
    return status is not None and status[0] in _UNREACHABLE


def _unavailable(exc: BaseException, what: str, start: float) -> Unavailable:
    """The error of a Milvus that did not answer `what`: the call, the time spent, the gRPC status."""
    code, details = _grpc_status(exc) or (type(exc).__name__, str(exc))
    return Unavailable(
        f"Milvus did not answer {what} within {time.monotonic() - start:.1f} s ({code}: {details})"
    )


def _grpc_status(exc: BaseException) -> tuple[str, str] | None:
    """(code name, details) of the first gRPC error in `exc` or its causes, else None.
    pymilvus wraps gRPC errors in `MilvusException` and re-raises it `from` itself, so
    the original is only on `__context__`: both links are followed."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        code, details = getattr(err, "code", None), getattr(err, "details", None)
        if callable(code) and callable(details):  # grpc.RpcError (also a grpc.Call)
            try:
                return str(getattr(code(), "name", code())), str(details())
            except Exception:  # not a call object after all
                pass
        todo += [err.__context__, err.__cause__]
    return None


def _row(r: NewsRecord) -> dict[str, Any]:
    return {
        "news_id": r.news_id,
        "vector": np.asarray(r.vector, dtype=np.float32).tolist(),
        "category": r.category,
        "subcategory": r.subcategory,
        "published_at": int(r.published_at),
        "model_version": r.model_version,
    }


def _check_records(records: Sequence[NewsRecord]) -> int:
    """Common dimension of `records`; clear errors for empty input, bad shapes, duplicate ids."""
    if not records:
        raise InvalidInput("no records to index")
    dim = int(np.asarray(records[0].vector).shape[-1])
    seen: set[str] = set()
    for r in records:
        shape = np.asarray(r.vector).shape
        if shape != (dim,):
            raise InvalidInput(f"news {r.news_id}: vector shape {shape}, expected ({dim},)")
        if r.news_id in seen:
            raise InvalidInput(f"news {r.news_id}: duplicate id in the records")
        if len(r.news_id) > _STR_LEN or not r.news_id:
            raise InvalidInput(f"news id {r.news_id!r}: must be 1..{_STR_LEN} characters")
        seen.add(r.news_id)
    return dim
