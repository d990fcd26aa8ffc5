"""Build the news-entity knowledge graph the GNN runs on (GNN weights train with the towers)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def build_graph(dataset: Input[Dataset], max_entities: int, graph: Output[Dataset]) -> None:
    """graph.safetensors + graph.json + summary.json (newsrec.kg.graph.build_kg)."""
    from newsrec.kg.graph import KGConfig, build_kg

    summary = build_kg(dataset.path, graph.path, KGConfig(max_entities_per_article=max_entities))
    # floats, not ints: see embed.py (kfp.local cache keys)
    graph.metadata.update({k: float(v) if isinstance(v, int) else v for k, v in summary.items()})
