"""The domain exceptions of the engine.

Every error the core raises on purpose derives from ``ImsearchError`` and carries a stable,
machine-readable ``code``; the web layer maps each class to an HTTP status and never has to
parse messages. The tree:

    ImsearchError
    ├── InvalidImage                  (code: invalid_image)
    │   ├── ImageDecodeError          (code: image_decode_error)   corrupt / truncated / unknown
    │   ├── EmptyImage                (code: empty_image)          zero bytes
    │   ├── UnsupportedImageFormat    (code: unsupported_format)   decodable, but not allowed
    │   └── ImageTooLarge             (code: image_too_large)      bytes or pixels over the limit
    ├── ModelError                    (code: model_error)
    │   ├── UnknownBackbone           (code: unknown_backbone)
    │   ├── CheckpointError           (code: checkpoint_error)     unreadable / wrong layout
    │   ├── ModelMismatch             (code: model_mismatch)       index built by another model
    │   └── LocalFeatureError         (code: local_feature_error)  corrupt stored keypoints
    ├── IndexError_                   (code: index_error)
    │   ├── IndexNotReady             (code: index_not_ready)      no index / empty index
    │   ├── DimensionMismatch         (code: dimension_mismatch)
    │   ├── DataDirLocked             (code: data_dir_locked)      another process writes it
    │   ├── UnknownId                 (code: unknown_id)
    │   ├── InvalidCollectionName     (code: invalid_collection_name)
    │   ├── UnknownCollection         (code: unknown_collection)
    │   └── CollectionExists          (code: collection_exists)    create, or drop "default"
    ├── DatasetError                  (code: dataset_error)        bad eval dataset layout
    ├── ConfigError                   (code: config_error)         invalid settings / options
    ├── DependencyUnavailable         (code: dependency_unavailable) a service down or too slow
    └── Forbidden                     (code: forbidden)            a key of another collection
"""

from __future__ import annotations


class ImsearchError(Exception):
    """Base of every deliberate error of the engine."""

    code = "imsearch_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(ImsearchError):
    code = "invalid_image"


class ImageDecodeError(InvalidImage):
    code = "image_decode_error"


class EmptyImage(InvalidImage):
    code = "empty_image"


class UnsupportedImageFormat(InvalidImage):
    code = "unsupported_format"


class ImageTooLarge(InvalidImage):
    code = "image_too_large"


class ModelError(ImsearchError):
    code = "model_error"


class UnknownBackbone(ModelError):
    code = "unknown_backbone"


class CheckpointError(ModelError):
    code = "checkpoint_error"


class ModelMismatch(ModelError):
    code = "model_mismatch"


class LocalFeatureError(ModelError):
    code = "local_feature_error"


class IndexError_(ImsearchError):
    code = "index_error"


class InvalidId(IndexError_):
    code = "invalid_id"


class IndexNotReady(IndexError_):
    code = "index_not_ready"


class DimensionMismatch(IndexError_):
    code = "dimension_mismatch"


class DataDirLocked(IndexError_):
    """Another process writes this data directory (one writer per collection)."""

    code = "data_dir_locked"


class UnknownId(IndexError_):
    code = "unknown_id"


class InvalidCollectionName(IndexError_):
    code = "invalid_collection_name"


class UnknownCollection(IndexError_):
    code = "unknown_collection"


class CollectionExists(IndexError_):
    """A collection of that name exists (or cannot be removed: ``default``)."""

    code = "collection_exists"


class DatasetError(ImsearchError):
    code = "dataset_error"


class ConfigError(ImsearchError):
    code = "config_error"


class DependencyUnavailable(ImsearchError):
    code = "dependency_unavailable"


class Unauthorized(ImsearchError):
    """No valid API key (or internal token) where one is required."""

    code = "unauthorized"


class Forbidden(ImsearchError):
    """A valid API key that may not do this: another collection's, or read-only."""

    code = "forbidden"


class UnsupportedMediaType(ImsearchError):
    """A request body declared as something the route does not read (Content-Type)."""

    code = "unsupported_media_type"


class RateLimited(ImsearchError):
    """The caller sent more requests than its rate allows; ``retry_after_s`` says when to retry."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def error_class(code: str) -> type[ImsearchError]:
    """The error class with this stable ``code`` (for errors relayed between services)."""
    stack: list[type[ImsearchError]] = [ImsearchError]
    while stack:
        cls = stack.pop()
        if cls.code == code:
            return cls
        stack.extend(cls.__subclasses__())
    return ImsearchError


__all__ = [
    "CheckpointError",
    "CollectionExists",
    "ConfigError",
    "DataDirLocked",
    "DatasetError",
    "DependencyUnavailable",
    "DimensionMismatch",
    "EmptyImage",
    "Forbidden",
    "ImageDecodeError",
    "ImageTooLarge",
    "ImsearchError",
    "IndexError_",
    "IndexNotReady",
    "InvalidCollectionName",
    "InvalidId",
    "InvalidImage",
    "LocalFeatureError",
    "ModelError",
    "ModelMismatch",
    "RateLimited",
    "Unauthorized",
    "UnknownBackbone",
    "UnknownCollection",
    "UnknownId",
    "UnsupportedImageFormat",
    "UnsupportedMediaType",
    "error_class",
]
