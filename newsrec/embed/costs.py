"""Price table and cost arithmetic for embedding runs (USD per 1M input tokens)."""

from __future__ import annotations

from dataclasses import dataclass

# Public list prices of OpenAI's embedding models (per 1M tokens, standard tier).
PRICES_PER_MILLION: dict[str, float] = {
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
}


@dataclass(frozen=True)
class Cost:
    usd: float | None
    note: str


def estimate_cost(provider: str, model: str, tokens: int) -> Cost:
    """Cost of `tokens` input tokens; None (with a note) when the model's price is unknown."""
    if provider == "local":
        return Cost(0.0, "local model: no per-token cost")
    price = PRICES_PER_MILLION.get(model)
    if price is None:
        return Cost(None, f"no price known for model {model!r}; add it to newsrec.embed.costs")
    return Cost(round(tokens * price / 1_000_000, 8), f"${price}/1M tokens")
