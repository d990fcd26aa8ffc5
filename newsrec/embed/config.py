"""Typed configuration of the embedding stage, validated at the edge (extra fields are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

LOCAL_MODEL = "all-MiniLM-L6-v2"
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"


class ProviderConfig(BaseModel):
    """How to reach one embedding model; `build_provider` turns it into a provider.

    The API key is never part of the config: it comes from `OPENAI_API_KEY` or from
    the file named by `api_key_file`, so a config can be logged or saved safely.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["local", "openai"] = "local"
    model: str | None = Field(default=None, description="model name (openai) or model directory (local)")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint, e.g. http://host:8000/v1"
    )
    dimensions: int | None = Field(
        default=None, gt=0, description="output size for text-embedding-3-* models"
    )
    api_key_file: Path | None = None
    rpm: float | None = Field(default=None, gt=0, description="requests per minute limit")
    tpm: float | None = Field(default=None, gt=0, description="tokens per minute limit")
    max_retries: int = Field(default=6, ge=0, le=50)
    backoff_base: float = Field(
        default=0.5, gt=0, description="first backoff in seconds, doubled per attempt"
    )
    backoff_max: float = Field(default=30.0, gt=0)
    timeout: float = Field(default=60.0, gt=0, description="seconds per HTTP request")
    max_tokens: int | None = Field(default=None, gt=0, description="override the model's input token limit")
    device: str = "cpu"

    def resolved_model(self) -> str:
        if self.model:
            return self.model
        return LOCAL_MODEL if self.provider == "local" else OPENAI_DEFAULT_MODEL


class PrecomputeConfig(BaseModel):
    """Settings of `precompute`: the provider plus batching, concurrency and cache."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderConfig = Field(default_factory=lambda: ProviderConfig())
    batch_size: int = Field(default=64, ge=1, le=2048, description="texts per request")
    max_batch_tokens: int = Field(default=100_000, ge=1, description="token budget per request")
    concurrency: int = Field(default=4, ge=1, le=64, description="requests in flight (remote providers)")
    cache_dir: Path | None = Field(default=None, description="default: OUT/cache")
    use_cache: bool = True
    progress: bool = True
