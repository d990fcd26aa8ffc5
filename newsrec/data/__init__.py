"""newsrec.data: MIND-format types, readers, validation and a synthetic generator."""

from newsrec.data.dataset import find_splits, first_seen, load_dataset, load_split
from newsrec.data.reader import format_time, parse_time, read_behaviors, read_news, read_vectors
from newsrec.data.types import BadRow, Entity, Impression, MindSplit, NewsArticle

__all__ = [
    "BadRow",
    "Entity",
    "Impression",
    "MindSplit",
    "NewsArticle",
    "find_splits",
    "first_seen",
    "format_time",
    "load_dataset",
    "load_split",
    "parse_time",
    "read_behaviors",
    "read_news",
    "read_vectors",
]
