"""Embed every news article's text (title + abstract) with the configured provider."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def embed_news(
    dataset: Input[Dataset],
    provider: str,
    model: str,
    base_url: str,
    dimensions: int,
    embeddings: Output[Dataset],
) -> None:
    """Write vectors.npy + ids.json + metadata.json (newsrec.embed.store format).

    The API key of a remote provider comes from the OPENAI_API_KEY environment variable,
    set from a Kubernetes secret by the pipeline; it is never a parameter.
    """
    import dataclasses
    from pathlib import Path

    from newsrec.embed.config import PrecomputeConfig, ProviderConfig
    from newsrec.embed.precompute import precompute
    from newsrec.errors import DataError

    root = Path(dataset.path)
    news = sorted(root.glob("*/news.tsv"))
    cfg = PrecomputeConfig(
        provider=ProviderConfig(
            provider=provider,  # type: ignore[arg-type]  # validated by pydantic
            model=model or None,
            base_url=base_url or None,
            dimensions=dimensions or None,
        ),
        cache_dir=Path(embeddings.path) / "cache",
        progress=False,
    )
    report = precompute(news, cfg, embeddings.path)
    if not report.ok:
        raise DataError(f"embedding failed: {dataclasses.asdict(report)}")
    embeddings.metadata.update(
        {
            "provider": report.provider,
            "model": report.model,
            # numbers as floats: kfp stores metadata as protobuf Struct (ints come back as
            # floats), and kfp.local's cache key must see the same value on every run
            "dimension": float(report.dimension or 0),
            "count": float(report.count),
        }
    )
