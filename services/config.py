"""Typed configuration of the services: a YAML file (`NEWSREC_CONFIG`) plus `NEWSREC_*` overrides.

Validated once at the edge (pydantic, extra="forbid"); errors name the file and field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from newsrec.errors import InvalidInput

ServiceName = Literal["gateway", "user-encoder", "retrieval", "ranker", "all"]
DEFAULT_PORTS: dict[str, int] = {"gateway": 50051, "user-encoder": 50052, "retrieval": 50053, "ranker": 50054}
MAX_K = 500
MAX_HISTORY = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CacheConfig(_Strict):
    """User-vector cache: Redis when `redis_url` is set, else an in-process LRU."""

    redis_url: str | None = None
    ttl_seconds: int = Field(3600, ge=1)
    key_prefix: str = "newsrec:uv:"
    lru_size: int = Field(100_000, ge=1)
    # A dead Redis must cost little: short socket timeouts, then skip it for a while.
    timeout_seconds: float = Field(0.05, gt=0)
    retry_after_seconds: float = Field(1.0, ge=0)


class StageTimeouts(_Strict):
    """Per-stage deadlines of the gateway (seconds), each bounded by the client's deadline."""

    encode_user: float = Field(0.05, gt=0)
    retrieve: float = Field(0.1, gt=0)
    rank: float = Field(0.1, gt=0)


class VariantConfig(_Strict):
    """One A/B arm: its own user tower, collection alias and ranker."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    model_version: str = ""
    weight: float = Field(1.0, ge=0)
    user_encoder: str
    retrieval: str
    ranker: str


class TlsConfig(_Strict):
    """gRPC over TLS: on when `cert_file` and `key_file` are set (PEM files). The same files
    serve the server side and, for the gateway, the client side of its backend channels."""

    cert_file: Path | None = None
    key_file: Path | None = None
    # Clients must present a certificate signed by this CA bundle (mutual TLS).
    client_ca_file: Path | None = None
    # CA bundle the gateway checks its backends' certificates against (default: system roots).
    ca_file: Path | None = None
    # Name the backends' certificates carry, when it is not the host of their address.
    server_name: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (both, or neither for plaintext)")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("client_ca_file (mutual TLS) needs cert_file and key_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class AuthConfig(_Strict):
    """A shared bearer token every newsrec.v1 call must carry (`authorization: Bearer ...`);
    health and reflection stay open. The gateway sends it to its backends. Off when unset."""

    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> AuthConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        if self.token is not None and not self.token.get_secret_value().strip():
            raise ValueError("token must not be empty")
        return self


class ReconnectConfig(_Strict):
    """Reconnect back-off of the gateway's backend channels. gRPC's default starts at 1 s and
    grows 1.6x per failed attempt up to 120 s, so a backend restarted after a few seconds
    down got its first call 15-45 s after it was serving again."""

    initial_backoff_ms: int = Field(100, ge=1, le=60_000)
    max_backoff_ms: int = Field(2000, ge=1, le=300_000)
    # Deadline of one connection attempt (gRPC `min_reconnect_backoff_ms`, default 20 s): a
    # backend address that swallows packets (a pod gone mid-restart) costs this, not 20 s.
    connect_timeout_ms: int = Field(5000, ge=100, le=120_000)

    @model_validator(mode="after")
    def _check(self) -> ReconnectConfig:
        if self.initial_backoff_ms > self.max_backoff_ms:
            raise ValueError(
                f"initial_backoff_ms ({self.initial_backoff_ms}) exceeds"
                f" max_backoff_ms ({self.max_backoff_ms})"
            )
        return self


class FeedbackConfig(_Strict):
    """The feedback loop of the gateway (docs/serving.md, "Feedback"): what it served, kept
    under a request id, and the impressions and clicks sent back, appended to a Redis
    Stream. On when a Redis URL is known: `redis_url`, else `cache.redis_url`."""

    enabled: bool = True
    redis_url: str | None = None
    stream: str = "newsrec:feedback"
    # XADD MAXLEN ~: the stream keeps about this many events (oldest trimmed first);
    # ~770 B each in Redis with a 50-id history (bench/feedback_cost.py).
    stream_maxlen: int = Field(1_000_000, ge=100)
    served_prefix: str = "newsrec:served:"
    # How long a served list accepts feedback (its record's TTL in Redis, ~750 B each).
    served_ttl_seconds: int = Field(3600, ge=1)
    # The last clicks of the request's history kept with the record (MIND's history column).
    history_limit: int = Field(50, ge=0, le=MAX_HISTORY)
    dedup_prefix: str = "newsrec:fbev:"
    # How long an event id is remembered (~140 B each) so a client retry is stored once;
    # a later replay is stored again, and `data from-events` still skips it.
    dedup_ttl_seconds: int = Field(3600, ge=1)
    # Served records waiting for the background writer; more are dropped (and counted).
    queue_size: int = Field(10_000, ge=1)
    timeout_seconds: float = Field(0.2, gt=0)
    retry_after_seconds: float = Field(1.0, ge=0)
    # An event_time this far after the gateway's clock, or before the list was served, is refused.
    max_clock_skew_seconds: float = Field(300.0, ge=0)
    # Window of the distinct-served-items gauge (coverage of the catalogue).
    coverage_window_seconds: float = Field(3600.0, gt=0)


class GatewayConfig(_Strict):
    variants: list[VariantConfig] = Field(default_factory=list)
    salt: str = "newsrec-ab-v1"
    retrieve_k: int = Field(200, ge=1, le=MAX_K)
    timeouts: StageTimeouts = Field(default_factory=lambda: StageTimeouts.model_validate({}))
    fallback_size: int = Field(1000, ge=1)
    # serve --all only: call the other services directly instead of over loopback gRPC.
    in_process: bool = True
    # Only used to rank the fallback list: newer news ranks higher at equal popularity.
    freshness_half_life_hours: float = Field(24.0, gt=0)
    # Read the user encoder's Redis cache before calling it, and skip that hop on a hit.
    # Only for variants with a pinned model_version (the cache key holds the version).
    user_cache_lookaside: bool = True
    reconnect: ReconnectConfig = Field(default_factory=lambda: ReconnectConfig.model_validate({}))
    feedback: FeedbackConfig = Field(default_factory=lambda: FeedbackConfig.model_validate({}))

    @model_validator(mode="after")
    def _check_variants(self) -> GatewayConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        if self.variants and sum(v.weight for v in self.variants) <= 0:
            raise ValueError("at least one variant needs a positive weight")
        return self


class RankerConfig(_Strict):
    """A ranker in its own process learns articles upserted after its model was trained
    (and re-learns them after its own restart) from retrieval's NewsService.GetNews."""

    # host:port of the variant's retrieval service; None: only the artifact's articles
    # (and, in `serve --all`, upserts of the shared model) are known.
    news_source: str | None = None
    # Deadline of one lookup (bounded by what is left of the Rank call); on failure the
    # candidates are scored as unknown and lookups pause for `retry_after_seconds`.
    lookup_timeout_seconds: float = Field(0.05, gt=0, le=10)
    retry_after_seconds: float = Field(1.0, ge=0, le=600)
    # An id retrieval does not know is not asked again for this long.
    miss_ttl_seconds: float = Field(30.0, ge=0, le=3600)
    # A known upserted article is asked again after this long (it may have been re-upserted).
    refresh_seconds: float = Field(60.0, gt=0, le=86_400)
    reconnect: ReconnectConfig = Field(default_factory=lambda: ReconnectConfig.model_validate({}))


class ServeConfig(_Strict):
    """Everything one `newsrec serve` process needs."""

    service: ServiceName = "all"
    host: str = "[::]"
    grpc_port: int | None = Field(None, ge=0, le=65535)
    metrics_port: int | None = Field(9100, ge=0, le=65535)
    max_workers: int = Field(16, ge=1)
    # On SIGTERM: health NOT_SERVING at once, every call still answered for `drain_seconds`
    # (load balancers, meshes and health-checking clients stop sending meanwhile), then no
    # new calls and in-flight ones get `grace_seconds` to finish. 0 for local runs; the
    # chart sets 5. A second signal skips what is left of the drain.
    drain_seconds: float = Field(0.0, ge=0, le=600)
    grace_seconds: float = Field(5.0, ge=0, le=600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    registry: Path | None = None
    # A serving artifact directory used directly, without a registry (development, benchmarks).
    serving_dir: Path | None = None
    model_name: str = "newsrec"
    model_version: str | None = None
    # Variant label of a non-gateway service (its metrics carry it).
    variant: str = "default"
    milvus_uri: str | None = None
    # Serve searches from an exact in-memory mirror of the collection (Milvus stays the
    # source of truth and takes every upsert); Milvus Lite alone is over the latency budget.
    index_mirror: bool = True
    # Deadline of every Milvus call on the serving path (search, alias lookup, count, fetch,
    # upsert), which is also how long an unreachable Milvus is retried: then UNAVAILABLE.
    # pymilvus alone retries a dead server for about 210 s.
    milvus_timeout_seconds: float = Field(2.0, gt=0, le=60)
    # Deadline of one slow step of building a collection (insert batch, flush, load).
    milvus_build_timeout_seconds: float = Field(600.0, gt=0, le=86_400)
    # How often the mirror re-checks the alias in Milvus (in the background, while searches arrive).
    index_mirror_refresh_seconds: float = Field(5.0, gt=0, le=3600)
    # A mirror check still running after this long makes the copy stale; null: max(30, 3 x refresh).
    index_mirror_stale_after_seconds: float | None = Field(None, gt=0, le=3600)
    # MIND news.tsv files giving titles/subcategories (the serving artifact has none).
    news_files: list[Path] = Field(default_factory=list)
    text_provider: dict[str, Any] = Field(default_factory=dict)
    cache: CacheConfig = Field(default_factory=lambda: CacheConfig.model_validate({}))
    tls: TlsConfig = Field(default_factory=lambda: TlsConfig.model_validate({}))
    auth: AuthConfig = Field(default_factory=lambda: AuthConfig.model_validate({}))
    gateway: GatewayConfig = Field(default_factory=lambda: GatewayConfig.model_validate({}))
    ranker: RankerConfig = Field(default_factory=lambda: RankerConfig.model_validate({}))

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def port(self) -> int:
        """The gRPC port: explicit, else the service's default."""
        if self.grpc_port is not None:
            return self.grpc_port
        return DEFAULT_PORTS.get(self.service, DEFAULT_PORTS["gateway"])


# env var -> dotted config field
_ENV_FIELDS: dict[str, str] = {
    "NEWSREC_SERVICE": "service",
    "NEWSREC_GRPC_PORT": "grpc_port",
    "NEWSREC_METRICS_PORT": "metrics_port",
    "NEWSREC_REGISTRY": "registry",
    "NEWSREC_SERVING_DIR": "serving_dir",
    "NEWSREC_MODEL_NAME": "model_name",
    "NEWSREC_MODEL_VERSION": "model_version",
    "NEWSREC_MILVUS_URI": "milvus_uri",
    "NEWSREC_REDIS_URL": "cache.redis_url",
    "NEWSREC_FEEDBACK_REDIS_URL": "gateway.feedback.redis_url",
    "NEWSREC_LOG_LEVEL": "log_level",
    "NEWSREC_VARIANT": "variant",
    "NEWSREC_DRAIN_SECONDS": "drain_seconds",
    "NEWSREC_GRACE_SECONDS": "grace_seconds",
    "NEWSREC_AUTH_TOKEN": "auth.token",
    "NEWSREC_AUTH_TOKEN_FILE": "auth.token_file",
    "NEWSREC_TLS_CERT_FILE": "tls.cert_file",
    "NEWSREC_TLS_KEY_FILE": "tls.key_file",
    "NEWSREC_TLS_CLIENT_CA_FILE": "tls.client_ca_file",
    "NEWSREC_TLS_CA_FILE": "tls.ca_file",
    "NEWSREC_TLS_SERVER_NAME": "tls.server_name",
    "NEWSREC_RANKER_NEWS_SOURCE": "ranker.news_source",
}
_ENV_LISTS: dict[str, str] = {"NEWSREC_NEWS_FILES": "news_files"}


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def load_config(
    path: Path | None = None, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> ServeConfig:
    """Build the config: YAML file (`path` or `$NEWSREC_CONFIG`), then env, then `overrides`
    (dotted keys, e.g. from CLI flags; None values are ignored)."""
    env = os.environ if env is None else env
    source = str(path) if path is not None else env.get("NEWSREC_CONFIG") or None
    data: dict[str, Any] = {}
    if source:
        try:
            loaded = yaml.safe_load(Path(source).read_text())
        except FileNotFoundError as exc:
            raise InvalidInput(f"{source}: config file not found") from exc
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{source}: not valid YAML ({exc})") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidInput(f"{source}: top level must be a mapping, got {type(loaded).__name__}")
        data = dict(loaded or {})
    for var, dotted in _ENV_FIELDS.items():
        if env.get(var):
            _set_dotted(data, dotted, env[var])
    for var, dotted in _ENV_LISTS.items():
        if env.get(var):
            _set_dotted(data, dotted, [p for p in env[var].split(os.pathsep) if p])
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, dotted, value)
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        where = source or "environment"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"{where}: invalid config: {problems}") from exc
