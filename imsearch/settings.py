"""The one settings object: environment variables ``IMSEARCH_*`` with documented defaults.

Every knob of the engine lives here; command-line options override fields of an instance.
See docs/OPERATIONS.md for the full table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from imsearch.features.extractor import MULTI_SCALES, ModelConfig, Pooling
from imsearch.images import ImageLimits
from imsearch.index.vectors import SearchKnobs


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
    data_dir: Path = Path("var/data")

    # -- descriptor model (see ModelConfig) -----------------------------------------------------
    backbone: str = "efficientnet_lite2"
    weights: Path | None = None
    cut: Literal["blocks", "head"] = "blocks"
    pooling: Pooling = "gem"
    gem_p: float = 3.0
    max_side: int = 1024
    scales: Annotated[tuple[float, ...], NoDecode] = MULTI_SCALES
    regions: int = 0
    device: str = "auto"
    batch_size: int = Field(8, ge=1, le=256)

    # -- index ---------------------------------------------------------------------------------
    #: Index family: a preset (``exact``, ``hnsw``, ``ivf-pq``… see imsearch.index.specs) or a
    #: FAISS factory string.
    index_spec: str = "exact"
    #: Default search knobs (per-request values override them).
    search_nprobe: int = Field(16, ge=1)
    search_ef: int = Field(64, ge=1)
    search_k_factor: float = Field(4.0, ge=1.0)
    #: ``collection``: learn PCA whitening from the collection's own descriptors once it has
    #: ``whitening_min_images``; ``none``: raw descriptors.
    whitening: Literal["none", "collection"] = "collection"
    whitening_shrinkage: float = Field(1.0, ge=0.0)
    whitening_dim: int | None = None
    whitening_min_images: int = Field(100, ge=3)

    # -- uploads and queries -------------------------------------------------------------------
    max_upload_bytes: int = 25 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    default_k: int = Field(10, ge=1)
    max_k: int = Field(1000, ge=1)
    #: Entries of the in-process query-descriptor cache (embedded mode).
    cache_size: int = Field(1024, ge=0)

    # -- server ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000

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

    def search_knobs(self) -> SearchKnobs:
        return SearchKnobs(self.search_nprobe, self.search_ef, self.search_k_factor)

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_bytes=self.max_upload_bytes, max_pixels=self.max_image_pixels)
