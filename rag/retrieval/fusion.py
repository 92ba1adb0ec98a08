"""Two rankings of one query as one: convex combination of normalised scores, or reciprocal-rank fusion.

Dense search finds paraphrases; keyword search finds the rare names, numbers and terms that a small
embedding model blurs. A convex combination of their min-max normalised scores, with equal weights, put
the answer into the prompt more often than reciprocal-rank fusion at the same context size (README,
"Retrieval"), as Bruch et al. (2023) found on other benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Fusion = Literal["convex", "rrf"]
FUSIONS: tuple[Fusion, ...] = ("convex", "rrf")
RRF_K = 60  # the constant of Cormack et al. (2009); rank 1 weighs 1/61, rank 10 weighs 1/70
DENSE_WEIGHT = 0.5  # equal weights: not tuned to any one corpus


def convex_fusion(rankings: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]) -> list[tuple[str, float]]:
    """Ids ordered by the weighted sum of their scores, each ranking's scores min-max normalised to [0, 1].

    An id missing from a ranking scores 0 there (it was below that ranking's candidates).
    """
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        scores = [score for _, score in ranking]
        low, high = min(scores), max(scores)
        for item, score in ranking:
            normalised = (score - low) / (high - low) if high > low else 1.0
            fused[item] = fused.get(item, 0.0) + weight * normalised
    return sorted(fused.items(), key=lambda pair: -pair[1])


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Ids ordered by the sum of 1/(k + rank) over the rankings that contain them; ties keep first-seen order."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])


def fuse(
    dense: Sequence[tuple[str, float]], keyword: Sequence[tuple[str, float]], fusion: Fusion
) -> list[tuple[str, float]]:
    """The two rankings of one query fused, best first."""
    if fusion == "rrf":
        return reciprocal_rank_fusion([[cid for cid, _ in dense], [cid for cid, _ in keyword]])
    return convex_fusion([dense, keyword], [DENSE_WEIGHT, 1.0 - DENSE_WEIGHT])


def merged(ranking: Sequence[tuple[str, float]], more: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Two rankings of the same query (same scores for the same id) as one, best first."""
    scores = dict(ranking)
    scores.update(more)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def fuse_within(
    dense: Sequence[tuple[str, float]],
    keyword: Sequence[tuple[str, float]],
    keyword_within: Sequence[tuple[str, float]],
    fusion: Fusion,
    within_share: float = 0.5,
    dense_feedback: Sequence[tuple[str, float]] = (),
) -> list[tuple[str, float]]:
    """One document's passages: by meaning, and by words, `within_share` of the words' weight by their rarity
    among the document's passages (`keyword_within`) and the rest by their rarity in the knowledge base. With
    `dense_feedback` (by meaning to the question moved towards its best passages), meaning's weight is shared
    equally between the two."""
    rankings = [dense, *([dense_feedback] if dense_feedback else []), keyword, keyword_within]
    if fusion == "rrf":
        return reciprocal_rank_fusion([[cid for cid, _ in ranking] for ranking in rankings])
    meaning = [DENSE_WEIGHT / 2] * 2 if dense_feedback else [DENSE_WEIGHT]
    words = 1.0 - DENSE_WEIGHT
    return convex_fusion(rankings, [*meaning, words * (1 - within_share), words * within_share])
