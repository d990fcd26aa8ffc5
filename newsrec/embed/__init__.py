"""newsrec.embed: text embedding providers, cache, precompute and an OpenAI-compatible server.

Importing this package loads neither torch nor the openai SDK; providers load them when built.
"""

from newsrec.embed.config import PrecomputeConfig, ProviderConfig
from newsrec.embed.providers import EmbeddingProvider, EmbedResult, build_provider
from newsrec.embed.store import EmbeddingTable, load_embeddings, save_embeddings

__all__ = [
    "EmbedResult",
    "EmbeddingProvider",
    "EmbeddingTable",
    "PrecomputeConfig",
    "ProviderConfig",
    "build_provider",
    "load_embeddings",
    "save_embeddings",
]
