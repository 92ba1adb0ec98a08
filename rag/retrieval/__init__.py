"""Query → the passages the model is given, in stages with one job each, composed in `pipeline.py`:

candidates (dense + keyword, fused: `candidates.py`, `fusion.py`) → document focus (the documents the
question is about: `focus.py`) → profile preference (rag/profiles/) → select (evidence gate, threshold,
budget: `select.py`). `Retriever.retrieve` returns what a turn injects and what each stage did.
"""

from rag.retrieval.candidates import CANDIDATES, SEARCH_MODES, CandidateSearch, Query, SearchMode
from rag.retrieval.focus import DOC_WEIGHT, DocumentFocus
from rag.retrieval.fusion import FUSIONS, Fusion, convex_fusion, reciprocal_rank_fusion
from rag.retrieval.pipeline import (
    STAGES,
    RetrievalOptions,
    RetrievalResult,
    Retriever,
    StageReport,
    StageSummary,
)
from rag.retrieval.select import EVIDENCE_COVERAGE, EVIDENCE_SIMILARITY, has_evidence, select_sources

__all__ = [
    "CANDIDATES",
    "DOC_WEIGHT",
    "EVIDENCE_COVERAGE",
    "EVIDENCE_SIMILARITY",
    "FUSIONS",
    "SEARCH_MODES",
    "STAGES",
    "CandidateSearch",
    "DocumentFocus",
    "Fusion",
    "Query",
    "RetrievalOptions",
    "RetrievalResult",
    "Retriever",
    "SearchMode",
    "StageReport",
    "StageSummary",
    "convex_fusion",
    "has_evidence",
    "reciprocal_rank_fusion",
    "select_sources",
]
