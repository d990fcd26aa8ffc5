"""Vector index interface and its Milvus implementation."""

from newsrec.index.base import HitColumns, NewsRecord, SearchFilters, SearchHit, VectorIndex

__all__ = ["HitColumns", "NewsRecord", "SearchFilters", "SearchHit", "VectorIndex"]
