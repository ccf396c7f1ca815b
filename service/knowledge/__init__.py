"""Similar past tickets and how they were resolved: storage, embeddings, ANN index, search."""

from service.knowledge.base import IndexState, KnowledgeBase
from service.knowledge.embedders import (
    BaseEncoderEmbedder,
    BundleEmbedder,
    Embedder,
    UniversalSentenceEncoder,
    make_embedder,
)
from service.knowledge.records import (
    EntryInput,
    KnowledgeRecord,
    SuggestFilters,
    Suggestion,
    WriteResult,
)

__all__ = [
    "BaseEncoderEmbedder",
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
    "make_embedder",
]
