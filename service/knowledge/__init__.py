"""Similar past tickets and how they were resolved: storage, embeddings, ANN index, search."""

from service.knowledge.base import IndexState, KnowledgeBase
from service.knowledge.embedders import BundleEmbedder, Embedder, UniversalSentenceEncoder
from service.knowledge.records import (
    EntryInput,
    KnowledgeRecord,
    SuggestFilters,
    Suggestion,
    WriteResult,
)

__all__ = [
    "BundleEmbedder",
    "Embedder",
    "EntryInput",
    "IndexState",
    "KnowledgeBase",
    "KnowledgeRecord",
    "SuggestFilters",
    "Suggestion",
    "UniversalSentenceEncoder",
    "WriteResult",
]
