"""The bundled demo collection: scikit-image's sample photos, plus altered copies as queries.

The images ship inside the installed ``scikit-image`` package (no download); their sources and
licences (public domain or CC) are listed in scikit-image's ``data/README.txt``. ``queries/``
holds rotated, cropped, darkened, noisy and blurred copies of a few of them, to try the engine
with the kind of photo a user takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

#: Sample images of ``skimage.data`` that load without a download (synthetic ones left out).
DEMO_IMAGES = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


def _load(name: str) -> Image.Image:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    return Image.fromarray(array).convert("RGB")


def _queries(images: dict[str, Image.Image]) -> dict[str, Image.Image]:
    """Altered copies: what a phone photo of the same thing might look like."""
    rng = np.random.default_rng(0)
    out: dict[str, Image.Image] = {}
    if "coffee" in images:
        out["coffee_rotated"] = images["coffee"].rotate(20, expand=True, fillcolor=(40, 40, 40))
    if "astronaut" in images:
        w, h = images["astronaut"].size
        out["astronaut_crop"] = images["astronaut"].crop((w // 8, 0, w * 7 // 8, h * 3 // 4))
    if "rocket" in images:
        out["rocket_dark"] = ImageEnhance.Brightness(images["rocket"]).enhance(0.5)
    if "cat" in images:
        arr = np.asarray(images["cat"], dtype=np.float32)
        noisy = np.clip(arr + rng.normal(0, 20, arr.shape), 0, 255).astype(np.uint8)
        out["cat_noisy"] = Image.fromarray(noisy)
    if "hubble_deep_field" in images:
        out["hubble_blurred"] = images["hubble_deep_field"].filter(ImageFilter.GaussianBlur(2))
    return out


def export_demo_collection(folder: str | Path) -> list[Path]:
    """Write ``collection/*.jpg`` and ``queries/*.jpg`` under ``folder``; returns the files."""
    folder = Path(folder)
    (folder / "collection").mkdir(parents=True, exist_ok=True)
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    images = {name: _load(name) for name in DEMO_IMAGES}
    written = []
    for sub, batch in (("collection", images), ("queries", _queries(images))):
        for name, image in batch.items():
            path = folder / sub / f"{name}.jpg"
            if not path.exists():
                image.save(path, quality=92)
            written.append(path)
    return written
