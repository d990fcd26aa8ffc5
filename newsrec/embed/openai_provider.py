"""Any OpenAI-compatible `/v1/embeddings` endpoint through the official `openai` SDK.

The SDK's own retries are off (`max_retries=0`): retries live in `newsrec.embed.retry`
so that each attempt passes through our rate limiter, 429s are counted, and
`Retry-After` is honoured the same way for every endpoint.

Token counts: tiktoken when it is installed and has its encoding locally, else a
conservative estimate of one token per 3 characters (English averages about 4), so
that batches stay inside the token budget and long texts are cut early rather than
rejected by the server. The server's reported usage is what the cost ledger bills.
"""

from __future__ import annotations

import base64
import math
import threading
from typing import Any

import numpy as np

from newsrec.embed.config import ProviderConfig
from newsrec.embed.providers import EmbedResult, SecretKey
from newsrec.embed.ratelimit import RateLimiter
from newsrec.embed.retry import (
    EmbeddingError,
    RetryPolicy,
    RetryStats,
    TransientEmbeddingError,
    call_with_retries,
    is_retryable_status,
    parse_retry_after,
)

CHARS_PER_TOKEN_ESTIMATE = 3
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_MAX_TOKENS = 8191


def _tiktoken_encoder(model: str) -> Any | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        return tiktoken.encoding_for_model(model)
    except Exception:  # unknown model or encoding file not available offline
        try:
            return tiktoken.get_encoding("cl100k_base")
        except Exception:
            return None


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        client: Any,
        model: str,
        *,
        dimensions: int | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        max_concurrency: int = 16,
        secret: SecretKey | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._client = client
        self.model = model
        self.dimensions = dimensions
        self.max_tokens = max_tokens
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.max_concurrency = max_concurrency
        self.stats = RetryStats()
        self._secret = secret
        self._timeout = timeout
        self._dimension = dimensions or NATIVE_DIMENSIONS.get(model)
        self._dim_lock = threading.RLock()  # the probe re-enters via _parse
        self._encoder = _tiktoken_encoder(model)
        self.token_counting = "tiktoken" if self._encoder else f"estimate: chars/{CHARS_PER_TOKEN_ESTIMATE}"

    @classmethod
    def from_config(cls, config: ProviderConfig, key: SecretKey) -> OpenAIProvider:
        from openai import OpenAI

        client = OpenAI(api_key=key.reveal(), base_url=config.base_url, max_retries=0, timeout=config.timeout)
        return cls(
            client,
            config.resolved_model(),
            dimensions=config.dimensions,
            max_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
            policy=RetryPolicy(config.max_retries, config.backoff_base, config.backoff_max),
            limiter=RateLimiter(config.rpm, config.tpm) if (config.rpm or config.tpm) else None,
            secret=key,
            timeout=config.timeout,
        )

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            with self._dim_lock:
                if self._dimension is None:  # unknown model: one tiny request tells us
                    self.embed(["dimension probe"])
        assert self._dimension is not None
        return self._dimension

    def count_tokens(self, texts: list[str]) -> list[int]:
        if self._encoder is not None:
            return [len(self._encoder.encode(t, disallowed_special=())) for t in texts]
        return [max(1, math.ceil(len(t) / CHARS_PER_TOKEN_ESTIMATE)) for t in texts]

    def truncate(self, text: str, tokens: int) -> str:
        if tokens <= self.max_tokens:
            return text
        if self._encoder is not None:
            return str(
                self._encoder.decode(self._encoder.encode(text, disallowed_special=())[: self.max_tokens])
            )
        return text[: self.max_tokens * CHARS_PER_TOKEN_ESTIMATE]

    def embed(self, texts: list[str]) -> EmbedResult:
        counts = self.count_tokens(texts)
        sent = [self.truncate(t, n) for t, n in zip(texts, counts, strict=True)]
        clipped = [min(n, self.max_tokens) for n in counts]
        budget = sum(clipped)

        def attempt() -> tuple[np.ndarray, int | None]:
            if self.limiter is not None:
                self.limiter.acquire(budget)
            return self._request(sent)

        vectors, usage = call_with_retries(attempt, self.policy, self.stats)
        return EmbedResult(
            vectors=vectors, tokens=clipped, billed_tokens=usage if usage is not None else budget
        )

    def _request(self, texts: list[str]) -> tuple[np.ndarray, int | None]:
        import openai

        # No encoding_format: the SDK then asks for base64 (4x smaller than JSON floats) and
        # decodes it, and still accepts servers that ignore the field and send floats.
        kwargs: dict[str, Any] = {"model": self.model, "input": texts}
        if self.dimensions is not None:
            kwargs["dimensions"] = self.dimensions
        try:
            resp = self._client.embeddings.create(**kwargs)
        except openai.APIStatusError as exc:
            status = exc.status_code
            msg = self._redact(f"HTTP {status} from embeddings endpoint: {_short(exc.message)}")
            if is_retryable_status(status):
                headers = dict(exc.response.headers) if exc.response is not None else None
                raise TransientEmbeddingError(
                    msg, status=status, retry_after=parse_retry_after(headers)
                ) from None
            raise EmbeddingError(msg, status=status) from None
        except openai.APITimeoutError:
            raise TransientEmbeddingError(f"timeout after {self._timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise TransientEmbeddingError(self._redact(f"connection error: {_short(str(exc))}")) from None
        except openai.OpenAIError as exc:
            raise EmbeddingError(self._redact(f"embedding response unusable: {_short(str(exc))}")) from None
        return self._parse(resp, len(texts))

    def _parse(self, resp: Any, n: int) -> tuple[np.ndarray, int | None]:
        data = sorted(resp.data, key=lambda d: d.index)
        if len(data) != n:
            raise EmbeddingError(f"embeddings endpoint returned {len(data)} vectors for {n} inputs")
        vectors = np.asarray([_vector(d.embedding) for d in data], dtype=np.float32)
        if vectors.ndim != 2 or not np.isfinite(vectors).all():
            raise EmbeddingError("embeddings endpoint returned ragged or non-finite vectors")
        with self._dim_lock:
            if self._dimension is None:
                self._dimension = int(vectors.shape[1])
        if vectors.shape[1] != self._dimension:
            raise EmbeddingError(
                f"expected {self._dimension}-d vectors, endpoint returned {vectors.shape[1]}-d"
            )
        usage = getattr(resp, "usage", None)
        return vectors, (int(usage.prompt_tokens) if usage is not None else None)

    def _redact(self, message: str) -> str:
        # Servers sometimes echo (part of) the key in 401 messages; never pass it on.
        if self._secret is not None:
            key = self._secret.reveal()
            message = message.replace(key, "***")
            if len(key) > 8:
                message = message.replace(key[:8], "***").replace(key[-4:], "***")
        return message

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self.model!r}, dimensions={self.dimensions!r}, key=***)"


def _vector(raw: Any) -> np.ndarray:
    if isinstance(raw, str):  # base64 left undecoded by the SDK
        return np.frombuffer(base64.b64decode(raw), dtype="<f4").astype(np.float32)
    return np.asarray(raw, dtype=np.float32)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
