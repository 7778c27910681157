"""Stage three: re-rank a query's first-stage hits with any combination of methods.

A method string joins stages with ``+`` and they run in this order: ``qe`` (α-query
expansion), ``dba`` (database-side augmentation), ``diffusion``, then ``spatial`` (local
features). ``none`` keeps the first-stage order. ``spatial``:

1. builds the candidate list from the visual-word shortlist *and* the global hits, taken in
   turns (visual 1st, global 1st, visual 2nd, …, duplicates skipped), so each first stage
   puts its best share of the ``m`` candidates under verification whatever the other thinks;
   with ``regions``, the visual-word shortlists of that many vertical strips of the photo
   take their turns too, so that each painting of a wall photo is a candidate, not only the
   one that dominates the photo's words and its global descriptor.
   ``fusion`` selects the alternatives the benchmark compares it with: reciprocal rank
   fusion (``rrf``), or one list alone (``global``, ``visual``);
2. verifies the top ``m`` candidates geometrically (RootSIFT + MAGSAC homography), in parallel;
3. gives each verified candidate a ``confidence`` — the calibrated probability that it shows
   the query's object, from its inliers against its tentative matches
   (:mod:`imsearch.rerank.confidence`) — puts the confident ones (``confidence ≥
   min_confidence`` and ``inliers ≥ min_inliers``) first by confidence, then the rest in the
   merged order, and answers ``no_confident_match`` when none is confident. Each confident
   hit also says where it is in the query photo (``box``): a photo of three paintings lists
   the three, each with its own box.

The work is split by what it needs. :class:`CandidateFinder` runs where the collection's
index is (the search service, or the embedded engine): QE, DBA, diffusion, the visual-word
shortlist and the fusion, handing on ranked :class:`Candidate` s, the first ``m`` with the
references of their local features. :class:`SpatialReranker` runs where verification is (the
rerank workers, or the same process): it reads those features from the feature store and
keeps nothing per image.

Scores in the result decrease down the list. Without ``spatial`` a hit's score is its cosine
(or diffusion score); with it, a confident hit scores ``inliers + cosine`` (at least
``min_inliers``) and any other hit ``1 / (2 + position in the merged list)``, at most 0.5.
(Ordering the confident hits by confidence instead ranks the dev sets the same.)
``global_score`` is always the cosine of the global descriptors in the index's space.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from imsearch.errors import ConfigError
from imsearch.features.local import LocalFeatures
from imsearch.index.features import FeatureRef
from imsearch.index.filters import Filter
from imsearch.index.vectors import SearchKnobs
from imsearch.rerank.confidence import MatchModel, shipped_model
from imsearch.rerank.global_rerank import DatabaseGraph, diffuse, expand_query
from imsearch.rerank.spatial import VerifyParams

if TYPE_CHECKING:
    from imsearch.index.store import IndexStore
    from imsearch.rerank.verifier import Verifier
    from imsearch.rerank.visual_words import VisualWords

STAGES = ("qe", "dba", "diffusion", "spatial")
FUSIONS = ("interleave", "rrf", "global", "visual")
#: The k of reciprocal rank fusion, 1 / (k + rank): the value of Cormack et al. (2009).
RRF_K = 60


@dataclass(frozen=True)
class RerankConfig:
    """Re-ranking settings; any field can be overridden per request."""

    method: str = "spatial"
    #: Candidates verified geometrically (``spatial``).
    m: int = 20
    #: Inliers a candidate needs at least, whatever its confidence (a floor).
    min_inliers: int = 8
    #: Confidence a verified candidate needs to count as a match; None: the calibrated
    #: threshold shipped with the match model.
    min_confidence: float | None = None
    #: Stop verifying once a candidate has this many inliers (None: verify all ``m``).
    early_exit_inliers: int | None = None
    #: How the visual-word shortlist and the global hits become the verified candidates.
    fusion: str = "interleave"
    #: Vertical strips of the query photo that get a visual-word shortlist of their own, taken
    #: in turns with the whole photo's two (``interleave`` only; 0 = none): the candidates
    #: then cover each painting of a wall, not only the largest.
    regions: int = 3
    #: First-stage hits the global stages and the fusion look at.
    shortlist: int = 100
    qe_n: int = 2
    qe_alpha: float = 3.0
    dba_n: int = 3
    dba_alpha: float = 3.0
    diffusion_k: int = 30
    diffusion_alpha: float = 0.9
    diffusion_gamma: float = 3.0
    ratio: float = 0.8

    @property
    def stages(self) -> tuple[str, ...]:
        if self.method in ("", "none"):
            return ()
        parts = tuple(p.strip() for p in self.method.split("+"))
        unknown = [p for p in parts if p not in STAGES]
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}: use one of {', '.join(FUSIONS)}")
        if unknown:
            raise ConfigError(
                f"unknown re-ranking method {self.method!r}: use none or a '+'-joined "
                f"combination of {', '.join(STAGES)}"
            )
        return tuple(s for s in STAGES if s in parts)

    @property
    def needs_local(self) -> bool:
        return "spatial" in self.stages

    def describe(self) -> dict[str, Any]:
        """What eval reports under ``rerank``."""
        stages = self.stages
        out: dict[str, Any] = {"method": self.method}
        if "spatial" in stages:
            out.update(
                m=self.m,
                min_inliers=self.min_inliers,
                min_confidence=self.min_confidence,
                ratio=self.ratio,
                early_exit_inliers=self.early_exit_inliers,
                fusion=self.fusion,
                regions=self.regions,
            )
        if "qe" in stages:
            out.update(qe_n=self.qe_n, qe_alpha=self.qe_alpha)
        if "dba" in stages:
            out.update(dba_n=self.dba_n, dba_alpha=self.dba_alpha)
        if "diffusion" in stages:
            out.update(
                diffusion_k=self.diffusion_k,
                diffusion_alpha=self.diffusion_alpha,
                diffusion_gamma=self.diffusion_gamma,
            )
        if stages:
            out["shortlist"] = self.shortlist
        return out


@dataclass(frozen=True)
class QueryFeatures:
    """What the extractor gives for a query: the raw global descriptor and local features."""

    vector: np.ndarray
    local: LocalFeatures | None = None


@dataclass(frozen=True)
class RankedHit:
    id: str
    score: float
    global_score: float
    inliers: int | None = None
    verified: bool = False
    #: Verified keypoint correspondences, normalised (see spatial.Verification.pairs).
    matches: tuple[tuple[float, float, float, float], ...] | None = None
    #: P(same object) from the verification; None when the hit was not verified.
    confidence: float | None = None
    #: Where a confident hit lies in the query photo (see spatial.Verification.box).
    box: tuple[float, float, float, float] | None = None


@dataclass
class RerankResult:
    hits: list[RankedHit]
    #: True when spatial verification found no candidate with enough inliers; None without it.
    no_confident_match: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A first-stage hit on its way to verification."""

    id: str
    #: Its ranking score: cosine, diffusion score, or ``1 / (2 + position)`` once fused.
    score: float
    #: Cosine of the global descriptors in the index's space.
    global_score: float
    #: Where its local features are (set for the candidates that will be verified).
    ref: FeatureRef | None = None


@dataclass
class Candidates:
    hits: list[Candidate]
    details: dict[str, Any] = field(default_factory=dict)
    #: The collection they come from (whose feature store their references point into) and
    #: its generation (see imsearch.collection.saved_spec).
    collection: str = "default"
    generation: str = ""


class CandidateFinder:
    """The stages that need the collection itself — global re-ranking (QE, DBA, diffusion)
    and the visual-word shortlist with its fusion — run where the index is. They hand on
    ranked candidates, the first ``m`` with the references of their local features."""

    def __init__(self, store: IndexStore, words: VisualWords | None = None) -> None:
        self.store = store
        self.words = words
        self.graph = DatabaseGraph()
        self._graph_lock = threading.Lock()
        store.subscribe(self)

    def apply(self, added: Any, removed: Any) -> None:  # store log listener
        self.graph.mark_dirty()

    def find(
        self,
        query: QueryFeatures,
        hits: list[Any],
        config: RerankConfig,
        knobs: SearchKnobs | None = None,
        where: Filter | None = None,
    ) -> Candidates:
        """Re-rank first-stage ``hits`` (objects with ``id`` and ``score``) for ``config``;
        with ``where``, every stage keeps to the images that satisfy it."""
        stages = config.stages
        ranked = [Candidate(h.id, h.score, h.score) for h in hits]
        q = self.store.transform(query.vector)[0]
        allowed = self.store.matching(where) if where is not None else None
        if "qe" in stages and ranked:
            ranked = self._query_expansion(q, ranked, config, knobs, where)
        if "dba" in stages and ranked:
            ranked = self._dba(q, ranked, config)
        if "diffusion" in stages and ranked:
            ranked = self._diffusion(q, ranked, config, allowed)
        if "spatial" not in stages:
            return Candidates(ranked)
        if query.local is None:
            raise ConfigError("spatial re-ranking needs the query's local features")
        return self._shortlist(q, query.local, ranked, config, allowed)

    # -- global stages ---------------------------------------------------------------------------

    def _query_expansion(
        self,
        q: np.ndarray,
        ranked: list[Candidate],
        config: RerankConfig,
        knobs: SearchKnobs | None,
        where: Filter | None,
    ) -> list[Candidate]:
        top = ranked[: config.qe_n]
        vectors = self.store.vectors([h.id for h in top])
        neighbours = np.stack([vectors[h.id] for h in top])
        scores = np.array([h.global_score for h in top])
        expanded = expand_query(q, neighbours, scores, config.qe_n, config.qe_alpha)
        hits = self.store.search_transformed(expanded[None], len(ranked), knobs, where)[0]
        return [Candidate(h.id, h.score, h.score) for h in hits]

    def _database(self) -> DatabaseGraph:
        with self._graph_lock:
            if self.graph.dirty:
                self.graph.load(*self.store.all_vectors())
            return self.graph

    def _dba(self, q: np.ndarray, ranked: list[Candidate], config: RerankConfig) -> list[Candidate]:
        graph = self._database()
        augmented = graph.dba_vectors(config.dba_n, config.dba_alpha)
        position = {image_id: i for i, image_id in enumerate(graph.ids)}
        rows = [position[h.id] for h in ranked if h.id in position]
        scores = augmented[rows] @ q
        rescored = [
            Candidate(graph.ids[r], float(s), float(s)) for r, s in zip(rows, scores, strict=True)
        ]
        return sorted(rescored, key=lambda h: -h.score)

    def _diffusion(
        self,
        q: np.ndarray,
        ranked: list[Candidate],
        config: RerankConfig,
        allowed: np.ndarray | None,
    ) -> list[Candidate]:
        graph = self._database()
        matrix = graph.diffusion_matrix(config.diffusion_alpha, config.diffusion_gamma)
        position = {image_id: i for i, image_id in enumerate(graph.ids)}
        seeds = [h for h in ranked[: config.diffusion_k] if h.id in position]
        scores = diffuse(
            matrix,
            np.array([h.global_score for h in seeds]),
            np.array([position[h.id] for h in seeds]),
            config.diffusion_gamma,
        )
        cosine = {h.id: h.global_score for h in ranked}
        if allowed is not None:  # diffusion spreads over the whole graph: keep to the filter
            keep = set(self.store.catalog.ext_ids(allowed.tolist()).values())
            scores = np.where([i in keep for i in graph.ids], scores, -np.inf)
        order = np.argsort(-scores)[: len(ranked)]
        return [
            Candidate(
                graph.ids[i],
                float(scores[i]),
                cosine.get(graph.ids[i], float(graph.vectors[i] @ q)),
            )
            for i in order
        ]

    # -- the visual-word shortlist and the fusion -----------------------------------------------

    def _shortlist(
        self,
        q: np.ndarray,
        query_local: LocalFeatures,
        ranked: list[Candidate],
        config: RerankConfig,
        allowed: np.ndarray | None = None,
    ) -> Candidates:
        catalog = self.store.catalog
        n = max(config.m, config.shortlist)
        regions = config.regions if config.fusion == "interleave" else 0
        lists = self.words.shortlists(query_local, n, regions, allowed) if self.words else [[]]
        names = catalog.ext_ids(list({i for shortlist in lists for i, _ in shortlist}))
        visual_ids, *region_ids = [[names[i] for i, _ in s if i in names] for s in lists]
        # id -> score, best first
        fused = fuse(config.fusion, visual_ids, [h.id for h in ranked], region_ids)
        cosine = {h.id: h.global_score for h in ranked}
        missing = [i for i in fused if i not in cosine]
        for image_id, vec in self.store.vectors(missing).items():
            cosine[image_id] = float(vec @ q)
        verified = list(fused)[: config.m]
        int_ids = catalog.int_ids_of(verified)
        refs = catalog.feature_refs(list(int_ids.values()))
        hits = [
            Candidate(c, score, cosine.get(c, 0.0), refs.get(int_ids.get(c, -1)))
            for c, score in fused.items()
        ]
        return Candidates(hits, {"visual_shortlist": len(visual_ids)})


class SpatialReranker:
    """Verifies the first ``m`` candidates that carry a feature reference, puts the verified
    ones first by inliers and says when none verified: the rerank worker's whole job."""

    def __init__(
        self,
        verifier: Verifier | None = None,
        config: RerankConfig | None = None,
        model: MatchModel | None = None,
    ) -> None:
        self.verifier = verifier
        self.config = config or RerankConfig()
        self.model = model or shipped_model()
        self.config.stages  # noqa: B018 - validate the method early

    def close(self) -> None:
        if self.verifier is not None:
            self.verifier.close()

    def rerank(
        self,
        query: LocalFeatures | None,
        candidates: Candidates,
        k: int,
        config: RerankConfig | None = None,
    ) -> RerankResult:
        """Verify ``candidates`` against the query's local features; keep ``k``."""
        config = config or self.config
        hits = candidates.hits
        if "spatial" not in config.stages:
            ranked = [RankedHit(c.id, c.score, c.global_score) for c in hits[:k]]
            return RerankResult(ranked, details=dict(candidates.details))
        if self.verifier is None:
            raise ConfigError("spatial re-ranking needs local features (IMSEARCH_LOCAL_FEATURES)")
        if query is None:
            raise ConfigError("spatial re-ranking needs the query's local features")
        chosen = [c for c in hits[: config.m] if c.ref is not None]
        params = VerifyParams(ratio=config.ratio, min_inliers=config.min_inliers)
        checks = self.verifier.verify(
            query,
            [c.ref for c in chosen if c.ref],
            params,
            config.early_exit_inliers,
            candidates.collection,
            candidates.generation,
        )
        done = {c.id: v for c, v in zip(chosen, checks, strict=True) if v is not None}
        confidence = {i: self.model.confidence(v.inliers, v.matches) for i, v in done.items()}
        threshold = self.model.threshold if config.min_confidence is None else config.min_confidence
        confident = sorted(
            (
                c
                for c in hits[: config.m]
                if c.id in done
                and done[c.id].inliers >= config.min_inliers
                and confidence[c.id] >= threshold
            ),
            key=lambda c: (-done[c.id].inliers, -c.global_score),
        )
        confident_ids = {c.id for c in confident}
        out = [
            RankedHit(
                c.id,
                done[c.id].inliers + c.global_score,
                c.global_score,
                done[c.id].inliers,
                True,
                _as_tuples(done[c.id].pairs),
                confidence[c.id],
                done[c.id].box,
            )
            for c in confident
        ]
        out += [
            RankedHit(
                c.id,
                c.score,
                c.global_score,
                done[c.id].inliers if c.id in done else None,
                confidence=confidence.get(c.id),
            )
            for c in hits
            if c.id not in confident_ids
        ]
        # The threshold in effect (the calibrated one unless the request set it).
        details = {**candidates.details, "verified": len(done), "min_confidence": threshold}
        return RerankResult(out[:k], no_confident_match=not confident, details=details)


#: Correspondences kept per verified hit (enough to draw, small enough to send).
MAX_PAIRS = 200


def _as_tuples(pairs: np.ndarray | None) -> tuple[tuple[float, float, float, float], ...] | None:
    if pairs is None:
        return None
    return tuple((float(a), float(b), float(c), float(d)) for a, b, c, d in pairs[:MAX_PAIRS])


def fuse(
    fusion: str, visual: list[str], global_: list[str], regions: list[list[str]] | None = None
) -> dict[str, float]:
    """Merge the first-stage rankings into one: the visual-word and the global ranking of the
    whole photo, and (``interleave`` only) the visual-word rankings of its strips.

    Returns id → ``1 / (2 + position)``, best first, whatever the method.
    """
    if fusion == "interleave":
        merged = _interleave(visual, global_, *(regions or ()))
    elif fusion == "rrf":
        votes: dict[str, float] = {}
        for ranking in (visual, global_):
            for rank, image_id in enumerate(ranking):
                votes[image_id] = votes.get(image_id, 0.0) + 1.0 / (RRF_K + rank + 1)
        merged = sorted(votes, key=lambda i: -votes[i])
    else:
        chosen = global_ if fusion == "global" else visual
        # The other list still fills the tail, so k results come back either way.
        merged = _interleave(chosen) + [i for i in _interleave(visual, global_) if i not in chosen]
    return {image_id: 1.0 / (2 + position) for position, image_id in enumerate(merged)}


def _interleave(*lists: list[str]) -> list[str]:
    """Merge ranked id lists by taking from each in turn (duplicates skipped)."""
    merged: dict[str, None] = {}
    for rank in range(max((len(ranking) for ranking in lists), default=0)):
        for ranking in lists:
            if rank < len(ranking):
                merged.setdefault(ranking[rank])
    return list(merged)


def with_overrides(config: RerankConfig, **overrides: Any) -> RerankConfig:
    """A copy of ``config`` with the non-None ``overrides`` applied."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
