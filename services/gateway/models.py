"""The public API's response bodies (their fields are what generated clients expose)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="Ranking score, decreasing down the list.")
    global_score: float = Field(description="Cosine similarity of the global descriptors.")
    inliers: int | None = Field(None, description="Geometric verification inliers, if checked.")
    verified: bool = Field(
        False, description="A confident match: verified geometrically with enough confidence."
    )
    confidence: float | None = Field(
        None,
        description="Probability (calibrated on the development sets) that this result shows "
        "the query's object, from its geometric verification; null when not verified.",
    )
    box: tuple[float, float, float, float] | None = Field(
        None,
        description="For a confident match: where it is in the query photo, [x1, y1, x2, y2] "
        "as fractions of the photo's width and height (several objects in one photo each get "
        "their own box).",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    matches: list[tuple[float, float, float, float]] | None = Field(
        None,
        description="With matches=true, for verified results: the consistent keypoint pairs "
        "[x_query, y_query, x_result, y_result], each a fraction of its image's width/height.",
    )


class SearchResponse(BaseModel):
    results: list[SearchHit]
    k: int
    no_confident_match: bool | None = Field(
        description="True when no result is a confident match (the object is probably not in "
        "the collection); null when the re-ranking does not verify."
    )
    cache: str = Field(description="hit: the query's descriptors came from the cache; else miss.")
    model_id: str
    timings_ms: dict[str, float] = Field(description="extract, search, rerank, total")
    rerank: dict[str, Any] = Field(description="The re-ranking method and its parameters.")


class ImageInfo(BaseModel):
    id: str
    sha256: str | None
    metadata: dict[str, Any]


class AddResponse(ImageInfo):
    created: bool = Field(description="False when the same id already held the same image.")


class DeleteResponse(BaseModel):
    id: str
    deleted: bool


class Stats(BaseModel):
    """What the collection holds; the index, whitening and log details depend on the mode."""

    model_config = ConfigDict(extra="allow")

    count: int = Field(description="Images in the collection.")
    model_id: str | None = Field(None, description="The model that describes them (if any).")
    dim: int | None = Field(None, description="Descriptor dimension (if any).")
    mode: str = Field(description="embedded (one process) or services.")
    rerank: dict[str, Any] = Field(description="The default re-ranking and its parameters.")


class CollectionInfo(BaseModel):
    """A collection of the deployment."""

    model_config = ConfigDict(extra="allow")

    name: str
    count: int = Field(description="Images in it.")
    index_spec: str | None = Field(None, description="The index family it was created with.")
    created: float | None = Field(None, description="When it was created (Unix time).")
    open: bool = Field(False, description="Held in memory now (it opens on first use).")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class CollectionCreate(BaseModel):
    name: str = Field(
        description="1-63 characters of a-z, 0-9, '_' and '-', starting with a letter or digit."
    )
    index_spec: str | None = Field(
        None,
        description="Index family (a preset such as exact, hnsw, ivf-pq, or a FAISS factory "
        "string); default: the deployment's IMSEARCH_INDEX_SPEC.",
    )


class DropResponse(BaseModel):
    name: str
    dropped: bool
