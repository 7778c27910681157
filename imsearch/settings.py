"""The one settings object: environment variables ``IMSEARCH_*`` with documented defaults.

Every knob of the engine lives here; command-line options override fields of an instance.
See docs/OPERATIONS.md for the full table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imsearch.features.config import (
    MULTI_SCALES,
    ModelConfig,
    Pooling,
    backbone_weights,
    shipped_weights_path,
)
from imsearch.features.local_codes import LocalEncoding
from imsearch.images import ImageLimits
from imsearch.index.vectors import SearchKnobs
from imsearch.rerank.reranker import RerankConfig

_MODEL_DEFAULTS = ModelConfig.model_fields


def parse_scales(value: Any) -> Any:
    """``"1,0.7071,1.4142"`` or ``"ms"`` (1, 1/√2, √2) or ``"1"`` → a tuple of floats."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("ms", "multi"):
            return MULTI_SCALES
        if text in ("ss", "single"):
            return (1.0,)
        return tuple(float(part) for part in text.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    """Engine settings; each field reads ``IMSEARCH_<FIELD>`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="IMSEARCH_", extra="ignore")

    # -- where state lives --------------------------------------------------------------------
    #: The data directory: the collection ``default`` and ``collections/<name>/`` for others.
    data_dir: Path = Path("var/data")
    #: Collections a process keeps open at most (the least recently used closes first), and
    #: seconds after which an unused one closes (imsearch/collection.py).
    max_open_collections: int = Field(16, ge=1, le=10_000)
    collection_idle_s: float = Field(900.0, gt=0)

    # -- descriptor model (see ModelConfig) -----------------------------------------------------
    # Defaults are ModelConfig's (the shipped configuration): one source of truth.
    backbone: str = _MODEL_DEFAULTS["backbone"].default
    weights: Path | None = None
    cut: Literal["blocks", "head"] = _MODEL_DEFAULTS["cut"].default
    pooling: Pooling = _MODEL_DEFAULTS["pooling"].default
    gem_p: float = _MODEL_DEFAULTS["gem_p"].default
    max_side: int = _MODEL_DEFAULTS["max_side"].default
    scales: Annotated[tuple[float, ...], NoDecode] = _MODEL_DEFAULTS["scales"].default
    regions: int = _MODEL_DEFAULTS["regions"].default
    device: str = "auto"
    #: Where the CNN trunk runs: ``auto`` (OpenVINO, else ONNX Runtime on the CPU; PyTorch on
    #: a GPU), ``torch`` (eager PyTorch: the reference), ``onnxruntime`` or ``openvino``.
    runtime: Literal["auto", "torch", "onnxruntime", "openvino"] = "auto"
    #: Threads of one extraction (unset: the cores this process may use).
    threads: int | None = Field(None, ge=1, le=256)
    batch_size: int = Field(8, ge=1, le=256)

    # -- index ---------------------------------------------------------------------------------
    #: Index family: ``auto`` (exact search up to 200k images, HNSW above), a preset
    #: (``exact``, ``hnsw``, ``ivf-pq``… see imsearch.index.specs) or a FAISS factory string.
    index_spec: str = "auto"
    #: Default search knobs (per-request values override them).
    search_nprobe: int = Field(16, ge=1)
    search_ef: int = Field(64, ge=1)
    search_k_factor: float = Field(4.0, ge=1.0)
    #: ``collection``: learn PCA whitening from the collection's own descriptors once it has
    #: ``whitening_min_images``; ``none``: raw descriptors; ``auto``: ``none`` for the shipped
    #: model (it carries a whitening learnt from synthetic photos, which a PCA of the
    #: collection on top undoes: −3.2 points on SMVS, BENCHMARKS §14), ``collection`` for any
    #: other network.
    whitening: Literal["auto", "none", "collection"] = "auto"
    whitening_shrinkage: float = Field(1.0, ge=0.0)
    whitening_dim: int | None = None
    whitening_min_images: int = Field(100, ge=3)

    # -- local features and re-ranking -------------------------------------------------------
    #: Extract RootSIFT local features when indexing (needed by ``spatial`` re-ranking).
    local_features: bool = True
    local_max_side: int = Field(800, ge=64, le=4096)
    local_max_keypoints: int = Field(1000, ge=16, le=10_000)
    #: SIFT's contrast threshold (OpenCV's default: 0.04) and local contrast equalisation
    #: (CLAHE) before detection: pale, low-contrast and small objects keep enough keypoints.
    #: Changing them needs no re-index (features of both kinds match each other).
    local_contrast: float = Field(0.02, gt=0.0, le=0.2)
    local_clahe: bool = True
    #: How a collection stores its keypoints' descriptors: ``sift8``, raw SIFT (128 bytes
    #: each); ``pq16`` / ``pq32``, product-quantisation codes of the shipped codebook (16 / 32
    #: bytes; docs/BENCHMARKS.md §15). Applies to what is written from then on; every reader
    #: reads every encoding, so changing it needs no re-index.
    local_encoding: LocalEncoding = "sift8"
    #: SIFT side of query photos, at most ``local_max_side`` (unset: that side). Changing it
    #: needs no re-index. 720 costs 15 % less SIFT time than 800 at the same mean mAP over
    #: SMVS and museum-dev (docs/BENCHMARKS.md §9).
    query_local_max_side: int | None = Field(720, ge=64, le=4096)
    #: Where the visual vocabulary comes from: ``collection`` (learned from the collection's
    #: own features once it has ``vocabulary_min_images``, ``vocabulary_words`` words),
    #: ``generic`` (the one shipped with the package, from the first image on) or a path to a
    #: ``.npy`` file of RootSIFT words (``imsearch vocabulary FOLDER --out FILE``).
    vocabulary: str = "collection"
    vocabulary_words: int = Field(16384, ge=16)
    vocabulary_min_images: int = Field(50, ge=1)
    #: Default re-ranking: ``none`` or a ``+``-joined combination of qe, dba, diffusion, spatial.
    rerank: str = "spatial"
    rerank_m: int = Field(20, ge=1, le=1000)
    #: Inliers a verified candidate needs at least (a floor under the confidence).
    rerank_min_inliers: int = Field(8, ge=4)
    #: Confidence (0..1) a verified candidate needs to be a match; unset: the threshold
    #: calibrated with the shipped match model (imsearch/rerank/confidence.py).
    rerank_min_confidence: float | None = Field(None, ge=0.0, le=1.0)
    rerank_early_exit: int | None = None
    #: interleave (default), rrf, global or visual: see imsearch/rerank/reranker.py.
    rerank_fusion: str = "interleave"
    #: Vertical strips of the query photo with a visual-word shortlist of their own (0 = none):
    #: several paintings in one photo each become a candidate.
    rerank_regions: int = Field(3, ge=0, le=8)
    rerank_shortlist: int = Field(100, ge=1)
    #: Postings one visual-word shortlist walks at most, its query's rarest words first
    #: (0 = every posting). Bounds the candidate call as the collection grows; below about
    #: this many postings nothing is pruned (docs/BENCHMARKS.md §16).
    shortlist_max_postings: int = Field(0, ge=0)
    rerank_workers: int = Field(2, ge=1, le=64)
    #: Ratio-test matcher of verification: ``matmul`` (one BLAS product) or ``opencv``
    #: (``BFMatcher``, the reference); both give the same pairs.
    rerank_matcher: Literal["matmul", "opencv"] = "matmul"
    #: Where rerank workers read local features: a path or an fsspec URL (``s3://…``) of the
    #: search primary's ``<data_dir>/features`` (a shared volume); other collections' are at
    #: ``../collections/<name>/features`` from it. Unset: under the data directory here.
    feature_store: str | None = None

    # -- uploads and queries -------------------------------------------------------------------
    max_upload_bytes: int = 25 * 1024 * 1024
    #: Images extracted at once in this process (embedded server, CLI); more requests wait.
    #: Concurrent CPU extractions share the cores but each holds its own buffers.
    extract_concurrency: int = Field(2, ge=1, le=256)
    max_image_pixels: int = 50_000_000
    default_k: int = Field(10, ge=1)
    max_k: int = Field(1000, ge=1)
    #: Entries of the in-process query-descriptor cache (embedded mode).
    cache_size: int = Field(1024, ge=0)

    # -- server ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000

    # -- services (unset URL = that stage runs inside the gateway) ------------------------------
    extractor_url: str | None = None
    search_url: str | None = None
    #: Read-only replicas of the search service for searches (unset: ``search_url``). They
    #: serve the primary's latest snapshot: reads may lag writes by a snapshot interval.
    search_read_url: str | None = None
    rerank_url: str | None = None
    #: ``redis://host:port/db``; unset = the in-process LRU cache.
    redis_url: str | None = None
    cache_ttl_s: int = Field(7 * 24 * 3600, ge=1)
    #: Per-call timeout towards another service, and retries (idempotent calls only).
    service_timeout_s: float = Field(10.0, gt=0)
    service_retries: int = Field(2, ge=0, le=10)
    #: Calls one gateway keeps in flight to each service; more wait (up to
    #: ``service_queue_timeout_s``, then a 503) before their timeout starts. Size it to what
    #: the service's replicas can run at once: with a CPU extractor, about its cores.
    service_max_in_flight: int = Field(8, ge=1, le=1024)
    service_queue_timeout_s: float = Field(60.0, gt=0)
    #: Extractor dynamic batching: wait up to this long to group concurrent requests.
    batch_window_ms: float = Field(5.0, ge=0)
    #: Search service as a read-only replica: serve the snapshot, reload it when it changes.
    replica: bool = False
    replica_poll_s: float = Field(5.0, gt=0)
    #: How often a service looks after its collection (whitening, vocabulary, snapshot).
    maintenance_s: float = Field(60.0, gt=0)
    #: Log entries (adds, deletes) after which upkeep rewrites the FAISS snapshot; until then
    #: the catalog's log is the durable delta, replayed at start (bounding restart time).
    snapshot_ops: int = Field(10_000, ge=1)

    # -- access (docs/SECURITY.md) ---------------------------------------------------------------
    #: API keys for writes (and searches, with ``search_requires_key``): comma-separated,
    #: each ``key`` or ``name:key``; more from ``api_keys_file`` (one per line, # comments).
    #: None configured: the API is open, and says so at start-up.
    api_keys: str = ""
    api_keys_file: Path | None = None
    #: Keys limited to collections, by key name: ``acme=shop-a:write,shared:read;globex=…``
    #: (``read``: search and get; ``write``: also add and delete images). A key named here
    #: reaches only its collections (403 elsewhere) and cannot create or drop collections;
    #: a key not named here reaches every collection.
    api_key_scopes: str = ""
    search_requires_key: bool = False
    #: Shared secret the internal services require in ``X-Internal-Token`` (unset: none).
    internal_token: str | None = None
    internal_token_file: Path | None = None
    #: Origins allowed to call the public API from a browser: comma-separated, or ``*``.
    cors_origins: str = ""
    #: Requests per minute per API key, or per client address without one (0 = no limit),
    #: and the burst allowed above that rate.
    rate_limit_per_min: int = Field(600, ge=0)
    rate_limit_burst: int = Field(120, ge=1)
    #: Proxies whose X-Forwarded-For names the client (comma-separated addresses, or ``*``).
    trusted_proxies: str = "127.0.0.1"

    @field_validator("scales", mode="before")
    @classmethod
    def _scales(cls, value: Any) -> Any:
        return parse_scales(value)

    def model(self) -> ModelConfig:
        """The descriptor model these settings describe."""
        return ModelConfig(
            backbone=self.backbone,
            weights=self.weights,
            cut=self.cut,
            pooling=self.pooling,
            gem_p=self.gem_p,
            max_side=self.max_side,
            scales=self.scales,
            regions=self.regions,
        )

    def collection_whitening(self) -> bool:
        """Whether a collection learns its own PCA whitening (see ``whitening``)."""
        if self.whitening != "auto":
            return self.whitening == "collection"
        return backbone_weights(self.model()) != shipped_weights_path()

    def rerank_config(self) -> RerankConfig:
        return RerankConfig(
            method=self.rerank,
            m=self.rerank_m,
            min_inliers=self.rerank_min_inliers,
            min_confidence=self.rerank_min_confidence,
            early_exit_inliers=self.rerank_early_exit,
            fusion=self.rerank_fusion,
            regions=self.rerank_regions,
            shortlist=self.rerank_shortlist,
        )

    def search_knobs(self) -> SearchKnobs:
        return SearchKnobs(self.search_nprobe, self.search_ef, self.search_k_factor)

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_upload_bytes, max_pixels=self.max_image_pixels)
