"""Contains all the data models used in inputs/outputs"""

from .add_response import AddResponse
from .add_response_metadata import AddResponseMetadata
from .body_add_image import BodyAddImage
from .body_add_image_in_collection import BodyAddImageInCollection
from .body_search import BodySearch
from .body_search_in_collection import BodySearchInCollection
from .collection_create import CollectionCreate
from .collection_info import CollectionInfo
from .collection_list import CollectionList
from .delete_response import DeleteResponse
from .drop_response import DropResponse
from .error_body import ErrorBody
from .error_detail import ErrorDetail
from .health import Health
from .health_detail import HealthDetail
from .image_info import ImageInfo
from .image_info_metadata import ImageInfoMetadata
from .search_hit import SearchHit
from .search_hit_metadata import SearchHitMetadata
from .search_response import SearchResponse
from .search_response_rerank import SearchResponseRerank
from .search_response_timings_ms import SearchResponseTimingsMs
from .stats import Stats
from .stats_rerank import StatsRerank

__all__ = (
    "AddResponse",
    "AddResponseMetadata",
    "BodyAddImage",
    "BodyAddImageInCollection",
    "BodySearch",
    "BodySearchInCollection",
    "CollectionCreate",
    "CollectionInfo",
    "CollectionList",
    "DeleteResponse",
    "DropResponse",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "HealthDetail",
    "ImageInfo",
    "ImageInfoMetadata",
    "SearchHit",
    "SearchHitMetadata",
    "SearchResponse",
    "SearchResponseRerank",
    "SearchResponseTimingsMs",
    "Stats",
    "StatsRerank",
)
