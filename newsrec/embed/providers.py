"""One interface for every embedding model, and `build_provider(config)`.

A provider is safe to keep for the life of a process (the news service holds one
for cold-start articles) and to call from several threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from newsrec.embed.config import ProviderConfig
from newsrec.errors import InvalidInput


@dataclass
class EmbedResult:
    """`vectors[i]` embeds `texts[i]`; `tokens[i]` is its (possibly truncated) token count;
    `billed_tokens` is what the server reported (or our count when it reports nothing)."""

    vectors: np.ndarray
    tokens: list[int]
    billed_tokens: int


@runtime_checkable
class EmbeddingProvider(Protocol):
    name: str
    model: str
    max_tokens: int
    # How many requests may usefully run at once (1 for an in-process model).
    max_concurrency: int

    @property
    def dimension(self) -> int: ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Untruncated token counts (exact or a stated estimate, see the provider)."""
        ...

    def embed(self, texts: list[str]) -> EmbedResult:
        """Embed a batch; texts over `max_tokens` are truncated. Raises `EmbeddingError`."""
        ...


class SecretKey:
    """An API key that does not print: repr/str show only that a key is set."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretKey('**********')"

    __str__ = __repr__


def load_api_key(config: ProviderConfig) -> SecretKey:
    """The key from `config.api_key_file`, else from `OPENAI_API_KEY`; errors never quote it."""
    if config.api_key_file is not None:
        path = Path(config.api_key_file)
        if not path.is_file():
            raise InvalidInput(f"{path}: API key file not found")
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            raise InvalidInput(f"{path}: API key file is empty")
        return SecretKey(value)
    value = os.environ.get("OPENAI_API_KEY", "").strip()
    if not value:
        raise InvalidInput("provider openai: set OPENAI_API_KEY or pass --api-key-file")
    return SecretKey(value)


def build_provider(config: ProviderConfig) -> EmbeddingProvider:
    """Make the provider a config names. The local model loads here (once), not at import."""
    if config.provider == "local":
        from newsrec.embed.local import LocalProvider

        return LocalProvider.from_config(config)
    from newsrec.embed.openai_provider import OpenAIProvider

    return OpenAIProvider.from_config(config, load_api_key(config))
