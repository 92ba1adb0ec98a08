"""The last stage: what the model is given. Nothing when the evidence is weak ("not in your documents"),
else the best passages in order, within the character budget.

A question is declined when no passage is close in meaning (cosine) AND none holds half of its content
words' weight (rare words weigh more). Calibrated on squad-dev questions that the evaluation does not use:
the fewest false declines with at least 75 % correct ones (README, "Not in your documents").
"""

from __future__ import annotations

from collections.abc import Sequence

from rag.schema import RetrievedChunk

EVIDENCE_SIMILARITY = 0.40
EVIDENCE_COVERAGE = 0.50


def has_evidence(hits: Sequence[RetrievedChunk], coverages: Sequence[float]) -> bool:
    """Whether any passage is relevant enough that the question is not declined."""
    return any(
        h.score >= EVIDENCE_SIMILARITY or share >= EVIDENCE_COVERAGE for h, share in zip(hits, coverages, strict=True)
    )


def select_sources(
    hits: Sequence[RetrievedChunk], min_score: float, max_chars: int, coverages: Sequence[float] | None = None
) -> list[RetrievedChunk]:
    """The best passages, in order, skipping any that would exceed `max_chars` (the first is always kept).

    A passage must score at least `min_score` (cosine) or, given `coverages`, hold at least
    EVIDENCE_COVERAGE of the question's keyword weight: a passage that keyword search found for its rare
    words (a code, a name) is evidence even when the embedding model sees little likeness.
    """
    shares = coverages if coverages is not None else [0.0] * len(hits)
    chosen: list[RetrievedChunk] = []
    used = 0
    for hit, share in zip(hits, shares, strict=True):
        if hit.score < min_score and share < EVIDENCE_COVERAGE:
            continue
        if chosen and used + len(hit.chunk.text) > max_chars:
            continue
        chosen.append(hit)
        used += len(hit.chunk.text)
    return chosen


def select(
    hits: Sequence[RetrievedChunk], coverages: Sequence[float], min_score: float, max_chars: int
) -> list[RetrievedChunk]:
    """What the model is given: nothing when the evidence is weak, else `select_sources`."""
    return select_sources(hits, min_score, max_chars, coverages) if has_evidence(hits, coverages) else []
