"""Vector index interface and its Milvus implementation."""

from newsrec.index.base import NewsRecord, SearchFilters, SearchHit, VectorIndex

__all__ = ["NewsRecord", "SearchFilters", "SearchHit", "VectorIndex"]
