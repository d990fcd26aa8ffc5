"""newsrec: news recommendation with LLM text, ID and knowledge-graph embeddings.

The library holds data, embeddings, models, training, evaluation, the vector index
and the registry. It never imports the gRPC services, kfp components or pipelines.
"""

__version__ = "0.1.0"
