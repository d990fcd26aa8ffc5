"""Build a variant's dependencies from the registry: model, Milvus index, catalog, cache, provider.

Everything is connected here, at startup (never at import time), and handed to the
servers; the servers themselves only see the protocols.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from newsrec.errors import InvalidInput, NotFound
from newsrec.index.articles import StoredArticle
from newsrec.index.base import NewsRecord, VectorIndex
from newsrec.models.serving import ServingModel
from services import gateway, ranker, user_encoder
from services.cache import LruVectorCache, RedisVectorCache, VectorCache, redis_client
from services.catalog import NewsCatalog, NewsInfo
from services.config import CacheConfig, ServeConfig, VariantConfig
from services.retrieval import remember_upsert
from services.stack import VariantDeps

log = logging.getLogger("services.loading")


def resolve_serving(config: ServeConfig) -> tuple[Path, str, Any]:
    """(serving artifact dir, Milvus alias, manifest) of the configured model version."""
    if config.serving_dir is not None:
        return config.serving_dir, _alias(None, config.model_name), None
    if config.registry is None:
        raise InvalidInput("registry: set NEWSREC_REGISTRY / --registry (or serving_dir / --serving)")
    from newsrec.registry import Registry

    manifest = Registry(config.registry).resolve(config.model_name, config.model_version)
    serving = Path(manifest.artifact_dir("serving"))
    alias = _alias(manifest, config.model_name)
    return serving, alias, manifest


def _alias(manifest: Any, model_name: str) -> str:
    """The manifest's Milvus alias, else the convention `news_<model>`."""
    index = getattr(manifest, "index", None)
    if index is not None and index.alias:
        return str(index.alias)
    from newsrec.index.milvus import alias_name

    return alias_name(model_name)


def load_model(serving_dir: Path) -> ServingModel:
    from newsrec.models import load_serving

    return load_serving(serving_dir)


def load_served_model(config: ServeConfig) -> tuple[ServingModel, str, Any]:
    """(model, Milvus alias, manifest) of the configured version, the model named by its
    registry version. Every service loads its model here, so the version a gateway pins,
    the version an encoder checks and the version in cache keys and Milvus are one name.
    Online, a model is named by its registry version: training runs before the pipeline
    settles the version, and re-training for a new name would be waste."""
    serving, alias, manifest = resolve_serving(config)
    model = load_model(serving)
    if manifest is not None:
        model.model_version = manifest.version
    return model, alias, manifest


def build_cache(cfg: CacheConfig) -> VectorCache:
    """Redis when a URL is configured, else the in-process LRU (embedded default)."""
    if cfg.redis_url:
        client = redis_client(cfg.redis_url, cfg.timeout_seconds)
        return RedisVectorCache(client, cfg.ttl_seconds, cfg.key_prefix, cfg.retry_after_seconds)
    return LruVectorCache(cfg.lru_size, cfg.ttl_seconds)


def build_catalog(model: ServingModel, news_files: list[Path]) -> NewsCatalog:
    """Catalog of the model's news: title, category, subcategory, clicks and first-seen from the
    artifact's metadata, so no MIND files are needed (the Helm chart passes none); articles in
    `news_files` (MIND `news.tsv`) take their title/category/subcategory from there instead."""
    from newsrec.data import read_news

    articles = {}
    for path in news_files:
        news, _bad = read_news(path)
        articles.update({a.news_id: a for a in news})
    items = []
    for news_id in model.news_ids():
        meta = model.news_metadata(news_id)
        art = articles.get(news_id)
        first_seen = (meta or {}).get("first_seen")
        items.append(
            NewsInfo(
                news_id=news_id,
                title=art.title if art else str((meta or {}).get("title", "")),
                category=art.category if art else str((meta or {}).get("category", "")),
                subcategory=art.subcategory if art else str((meta or {}).get("subcategory", "")),
                published_at=int(first_seen) if first_seen is not None else 0,
                clicks=int((meta or {}).get("popularity", 0)),
            )
        )
    return NewsCatalog(items)


def ensure_index(index: VectorIndex, alias: str, model: ServingModel, catalog: NewsCatalog) -> None:
    """Build the collection behind `alias` from the artifact's vectors when it does not exist
    (the embedded default; on Kubernetes the pipeline has built it)."""
    try:
        collection = index.resolve_alias(alias)
        log.info("serving existing collection", extra={"alias": alias, "collection": collection})
        return
    except NotFound:
        pass  # only a missing alias: a Milvus that does not answer must fail, not trigger a build
    vectors = model.news_vectors()
    records = []
    for i, news_id in enumerate(model.news_ids()):
        info = catalog.get(news_id)
        records.append(
            NewsRecord(
                news_id=news_id,
                vector=vectors[i],
                category=info.category if info else "",
                subcategory=info.subcategory if info else "",
                published_at=info.published_at if info else 0,
                model_version=model.model_version,
            )
        )
    name = index.build_version(alias, model.model_version, records)
    log.info("built collection", extra={"alias": alias, "collection": name, "rows": len(records)})


def build_provider(config: ServeConfig, manifest: Any) -> Any:
    """The text embedding provider for cold-start articles: the config's, else the one the
    manifest says the model was trained with (a model is only valid with its own provider)."""
    from newsrec.embed.config import LOCAL_MODEL, ProviderConfig
    from newsrec.embed.providers import build_provider as _build

    data = dict(config.text_provider)
    emb = getattr(manifest, "embedding", None)
    if not data and emb is not None:
        data = {"provider": emb.provider}
        if emb.provider != "local":
            data |= {"model": emb.model, "dimensions": emb.dimensions, "base_url": emb.base_url}
        elif emb.model != LOCAL_MODEL:
            data["model"] = emb.model
    try:
        provider_config = ProviderConfig.model_validate(data)
    except ValueError as exc:
        raise InvalidInput(f"text_provider: {exc}") from exc
    return _build(provider_config)


def load_variant(config: ServeConfig, *, with_provider: bool = True, weight: float = 1.0) -> VariantDeps:
    """Everything one variant needs, from the registry, Milvus and Redis in `config`."""
    from newsrec.index.milvus import MilvusIndex

    _serving, alias, manifest = resolve_serving(config)
    index_info = getattr(manifest, "index", None)
    uri = config.milvus_uri or (index_info.uri if index_info is not None else None)
    if not uri:
        raise InvalidInput("milvus_uri: set NEWSREC_MILVUS_URI or --milvus-uri (a file path: Milvus Lite)")
    model, alias, manifest = load_served_model(config)
    catalog = build_catalog(model, list(config.news_files))
    milvus = MilvusIndex.from_uri(
        uri, timeout_s=config.milvus_timeout_seconds, build_timeout_s=config.milvus_build_timeout_seconds
    )
    index: VectorIndex = milvus
    if config.index_mirror:
        from newsrec.index.memory import MirroredIndex

        index = MirroredIndex(
            milvus,
            refresh_s=config.index_mirror_refresh_seconds,
            stale_after_s=config.index_mirror_stale_after_seconds,
        )
    ensure_index(index, alias, model, catalog)
    upserted = restore_upserts(index, alias, model, catalog)
    provider = build_provider(config, manifest) if with_provider else None
    deps = VariantDeps(model, index, alias, catalog, build_cache(config.cache), provider, weight)
    deps.upserted = upserted
    return deps


def restore_upserts(
    index: VectorIndex, alias: str, model: ServingModel, catalog: NewsCatalog
) -> dict[str, StoredArticle]:
    """Reload the articles UpsertNews stored for `alias`, so after a restart they are shown
    (titles) and ranked from their content as before. Records of another model version
    (their vectors come from another news tower) and damaged ones are left out, and logged."""
    load = getattr(index, "load_articles", None)
    if load is None:
        return {}
    articles, errors = load(alias)
    for line in errors:
        log.error("stored article refused", extra={"error": line})
    upserted: dict[str, StoredArticle] = {}
    other = 0
    for stored in articles:
        if stored.model_version != model.model_version or stored.vector.shape != (model.dim,):
            other += 1
            continue
        remember_upsert(model, catalog, upserted, stored)
    log.info(
        "restored upserted articles",
        extra={"alias": alias, "articles": len(upserted), "other_version": other, "refused": len(errors)},
    )
    return upserted


def deps_for(service: str, config: ServeConfig) -> Callable[[], Any]:
    """The loader of one service's deps when it runs on its own (`serve --service NAME`),
    built from the same pieces as `serve --all` (`load_served_model`, `load_variant`,
    `VariantDeps.*_deps`, `gateway.backend_for`), so the two modes cannot disagree."""

    def ue() -> user_encoder.UserEncoderDeps:
        model, _alias, _manifest = load_served_model(config)
        return user_encoder.UserEncoderDeps(model, build_cache(config.cache))

    def rk() -> ranker.RankerDeps:
        model = load_served_model(config)[0]
        if config.ranker.news_source is None:
            return ranker.RankerDeps(model)
        from services.news_lookup import UpsertedNewsLookup

        return ranker.RankerDeps(model, UpsertedNewsLookup.connect(config, model))

    def gw() -> gateway.GatewayDeps:
        # Only a Redis cache is shared with the encoders; a local LRU would never be written.
        cache = build_cache(config.cache) if config.cache.redis_url else None
        return gateway.GatewayDeps(
            {v.name: _gateway_backend(config, v, cache) for v in config.gateway.variants}
        )

    loaders: dict[str, Callable[[], Any]] = {
        "user-encoder": ue,
        "retrieval": lambda: load_variant(config).retrieval_deps(),
        "ranker": rk,
        "gateway": gw,
    }
    if service not in loaders:
        raise InvalidInput(f"service: {service!r} is not one service; use serve --all for every service")
    return loaders[service]


def _gateway_backend(config: ServeConfig, variant: VariantConfig, cache: Any) -> gateway.VariantBackend:
    """One variant of a gateway on its own: the variant's model (for its fallback list and
    look-aside), none when no registry is configured."""
    if config.registry is None and config.serving_dir is None:
        log.warning("no registry configured: the gateway has no fallback list")
        return gateway.backend_for(config, variant, None, NewsCatalog(), None)
    cfg = config.model_copy(update={"model_version": variant.model_version or config.model_version})
    model, _alias, _manifest = load_served_model(cfg)
    catalog = build_catalog(model, list(config.news_files))
    return gateway.backend_for(config, variant, model, catalog, cache)
