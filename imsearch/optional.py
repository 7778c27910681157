"""Heavy dependencies that only some processes need, imported where they are used.

OpenCV (SIFT, RANSAC) is needed where local features are extracted or verified — the
extractor and the rerank service — but not by the search service or a gateway that delegates
every stage; leaving it out keeps those images small. It is the ``local`` extra
(``pip install 'imsearch[local]'``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from imsearch.errors import ConfigError

#: Module → the pip extra that installs it.
EXTRAS = {"cv2": "local", "matplotlib": "bench", "ray": "bulk"}


def require(module: str) -> ModuleType:
    """``module``, imported; a missing one is a ConfigError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module, "local")
        raise ConfigError(
            f"this needs {module.split('.')[0]}, which is not installed: "
            f"pip install 'imsearch[{extra}]' ({exc})"
        ) from exc
