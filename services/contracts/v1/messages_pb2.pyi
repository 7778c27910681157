from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Vector(_message.Message):
    __slots__ = ("dim", "dtype", "data")
    class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FLOAT32: _ClassVar[Vector.DType]
        FLOAT16: _ClassVar[Vector.DType]
    FLOAT32: Vector.DType
    FLOAT16: Vector.DType
    DIM_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dim: int
    dtype: Vector.DType
    data: bytes
    def __init__(self, dim: _Optional[int] = ..., dtype: _Optional[_Union[Vector.DType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class LocalFeatures(_message.Message):
    __slots__ = ("count", "width", "height", "xy", "sift")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    XY_FIELD_NUMBER: _ClassVar[int]
    SIFT_FIELD_NUMBER: _ClassVar[int]
    count: int
    width: float
    height: float
    xy: bytes
    sift: bytes
    def __init__(self, count: _Optional[int] = ..., width: _Optional[float] = ..., height: _Optional[float] = ..., xy: _Optional[bytes] = ..., sift: _Optional[bytes] = ...) -> None: ...

class BBox(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ...) -> None: ...

class ExtractRequest(_message.Message):
    __slots__ = ("image", "want_global", "want_local", "bbox", "want_thumbnail", "query")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    WANT_GLOBAL_FIELD_NUMBER: _ClassVar[int]
    WANT_LOCAL_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    WANT_THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    want_global: bool
    want_local: bool
    bbox: BBox
    want_thumbnail: bool
    query: bool
    def __init__(self, image: _Optional[bytes] = ..., want_global: _Optional[bool] = ..., want_local: _Optional[bool] = ..., bbox: _Optional[_Union[BBox, _Mapping]] = ..., want_thumbnail: _Optional[bool] = ..., query: _Optional[bool] = ...) -> None: ...

class ExtractResponse(_message.Message):
    __slots__ = ("model_id", "local_id", "vector", "local", "thumbnail")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    local_id: str
    vector: Vector
    local: LocalFeatures
    thumbnail: bytes
    def __init__(self, model_id: _Optional[str] = ..., local_id: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., local: _Optional[_Union[LocalFeatures, _Mapping]] = ..., thumbnail: _Optional[bytes] = ...) -> None: ...

class SearchKnobs(_message.Message):
    __slots__ = ("nprobe", "ef_search", "k_factor")
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    K_FACTOR_FIELD_NUMBER: _ClassVar[int]
    nprobe: int
    ef_search: int
    k_factor: float
    def __init__(self, nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ..., k_factor: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("queries", "k", "knobs", "config", "local", "collection", "filter_json")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    KNOBS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[Vector]
    k: int
    knobs: SearchKnobs
    config: RerankConfig
    local: LocalFeatures
    collection: str
    filter_json: str
    def __init__(self, queries: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., k: _Optional[int] = ..., knobs: _Optional[_Union[SearchKnobs, _Mapping]] = ..., config: _Optional[_Union[RerankConfig, _Mapping]] = ..., local: _Optional[_Union[LocalFeatures, _Mapping]] = ..., collection: _Optional[str] = ..., filter_json: _Optional[str] = ...) -> None: ...

class FeatureRef(_message.Message):
    __slots__ = ("segment", "offset", "length")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    segment: int
    offset: int
    length: int
    def __init__(self, segment: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "global_score", "ref")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    global_score: float
    ref: FeatureRef
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., global_score: _Optional[float] = ..., ref: _Optional[_Union[FeatureRef, _Mapping]] = ...) -> None: ...

class HitList(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "details_json", "generation")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[HitList]
    details_json: str
    generation: str
    def __init__(self, results: _Optional[_Iterable[_Union[HitList, _Mapping]]] = ..., details_json: _Optional[str] = ..., generation: _Optional[str] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "vector", "sha256", "metadata_json", "local", "thumbnail")
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: Vector
    sha256: str
    metadata_json: str
    local: LocalFeatures
    thumbnail: bytes
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., sha256: _Optional[str] = ..., metadata_json: _Optional[str] = ..., local: _Optional[_Union[LocalFeatures, _Mapping]] = ..., thumbnail: _Optional[bytes] = ...) -> None: ...

class AddRequest(_message.Message):
    __slots__ = ("model_id", "items", "collection")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    collection: str
    def __init__(self, model_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., collection: _Optional[str] = ...) -> None: ...

class AddResponse(_message.Message):
    __slots__ = ("added",)
    ADDED_FIELD_NUMBER: _ClassVar[int]
    added: int
    def __init__(self, added: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("ids", "collection")
    IDS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    collection: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., collection: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ("ids", "collection")
    IDS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    collection: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., collection: _Optional[str] = ...) -> None: ...

class ItemInfo(_message.Message):
    __slots__ = ("id", "sha256", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    sha256: str
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., sha256: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ItemInfo]
    def __init__(self, items: _Optional[_Iterable[_Union[ItemInfo, _Mapping]]] = ...) -> None: ...

class ThumbnailRequest(_message.Message):
    __slots__ = ("id", "collection")
    ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    collection: str
    def __init__(self, id: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class ThumbnailResponse(_message.Message):
    __slots__ = ("found", "data", "sha256")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    found: bool
    data: bytes
    sha256: str
    def __init__(self, found: _Optional[bool] = ..., data: _Optional[bytes] = ..., sha256: _Optional[str] = ...) -> None: ...

class RerankConfig(_message.Message):
    __slots__ = ("method", "m", "min_inliers", "early_exit_inliers", "shortlist", "fusion", "min_confidence")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    MIN_INLIERS_FIELD_NUMBER: _ClassVar[int]
    EARLY_EXIT_INLIERS_FIELD_NUMBER: _ClassVar[int]
    SHORTLIST_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    method: str
    m: int
    min_inliers: int
    early_exit_inliers: int
    shortlist: int
    fusion: str
    min_confidence: float
    def __init__(self, method: _Optional[str] = ..., m: _Optional[int] = ..., min_inliers: _Optional[int] = ..., early_exit_inliers: _Optional[int] = ..., shortlist: _Optional[int] = ..., fusion: _Optional[str] = ..., min_confidence: _Optional[float] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("local", "hits", "k", "config", "details_json", "collection", "generation")
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    local: LocalFeatures
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    k: int
    config: RerankConfig
    details_json: str
    collection: str
    generation: str
    def __init__(self, local: _Optional[_Union[LocalFeatures, _Mapping]] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., k: _Optional[int] = ..., config: _Optional[_Union[RerankConfig, _Mapping]] = ..., details_json: _Optional[str] = ..., collection: _Optional[str] = ..., generation: _Optional[str] = ...) -> None: ...

class RankedHit(_message.Message):
    __slots__ = ("id", "score", "global_score", "inliers", "verified", "matches", "confidence", "box")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GLOBAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    INLIERS_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    global_score: float
    inliers: int
    verified: bool
    matches: _containers.RepeatedScalarFieldContainer[float]
    confidence: float
    box: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., global_score: _Optional[float] = ..., inliers: _Optional[int] = ..., verified: _Optional[bool] = ..., matches: _Optional[_Iterable[float]] = ..., confidence: _Optional[float] = ..., box: _Optional[_Iterable[float]] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("hits", "answer", "details_json")
    class Answer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NOT_CHECKED: _ClassVar[RerankResponse.Answer]
        CONFIDENT_MATCH: _ClassVar[RerankResponse.Answer]
        NO_CONFIDENT_MATCH: _ClassVar[RerankResponse.Answer]
    NOT_CHECKED: RerankResponse.Answer
    CONFIDENT_MATCH: RerankResponse.Answer
    NO_CONFIDENT_MATCH: RerankResponse.Answer
    HITS_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[RankedHit]
    answer: RerankResponse.Answer
    details_json: str
    def __init__(self, hits: _Optional[_Iterable[_Union[RankedHit, _Mapping]]] = ..., answer: _Optional[_Union[RerankResponse.Answer, str]] = ..., details_json: _Optional[str] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "index_spec", "model_id", "dim")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_SPEC_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    name: str
    index_spec: str
    model_id: str
    dim: int
    def __init__(self, name: _Optional[str] = ..., index_spec: _Optional[str] = ..., model_id: _Optional[str] = ..., dim: _Optional[int] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "info_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INFO_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    info_json: str
    def __init__(self, name: _Optional[str] = ..., info_json: _Optional[str] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: bool
    def __init__(self, dropped: _Optional[bool] = ...) -> None: ...
