"""Synthetic photos of a catalogue image: the positives of self-supervised training.

One generator for every kind of photo users send (the trained descriptor and the hard-photo
work share it): the flat object seen at an angle (a random homography), cropped or zoomed,
turned by a quarter or half turn, under other light and colour, with glare, blur, sensor
noise and JPEG; pasted into clutter or beside other images (several objects in one photo);
in a frame or beside a text label; small in a large photo; behind glass (a faint reflection
of another scene, a colour cast); pale and low in contrast; partly hidden by something in
front; and bent a little out of its plane (what a building's relief does to a homography).

Each view is drawn from the generator's own :class:`random.Random`, so a seed gives the same
views in the same order. ``other`` supplies the images a view borrows (backgrounds, the other
objects beside it, reflections, occluders): in training, other images of the pool.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

#: Supplies another image (RGB) when a view needs one.
OtherImage = Callable[[random.Random], Image.Image]


@dataclass(frozen=True)
class ViewConfig:
    """How often each change happens (probabilities) and how strong it may be."""

    #: The object is small in a large photo (area fraction ``small_area``), else ``area``.
    p_small: float = 0.25
    small_area: tuple[float, float] = (0.04, 0.15)
    area: tuple[float, float] = (0.15, 0.95)
    #: Corner displacement of the homography, as a fraction of the object's size.
    perspective: tuple[float, float] = (0.0, 0.3)
    #: In-plane rotation, degrees (beyond the quarter turns).
    tilt: float = 20.0
    p_clutter: float = 0.6
    p_others: float = 0.4
    p_frame: float = 0.3
    p_label: float = 0.3
    p_occluder: float = 0.2
    p_glass: float = 0.25
    p_glare: float = 0.25
    p_cast: float = 0.5
    p_pale: float = 0.2
    p_grey: float = 0.1
    p_vignette: float = 0.3
    p_bend: float = 0.2
    p_blur: float = 0.4
    p_noise: float = 0.5
    p_lowres: float = 0.2
    p_jpeg: float = 0.8
    jpeg_quality: tuple[int, int] = (30, 95)
    #: Always applied: exposure gain and offset, and gamma.
    gain: tuple[float, float] = (0.6, 1.35)
    offset: tuple[float, float] = (-25.0, 25.0)
    gamma: tuple[float, float] = (0.7, 1.5)
    #: Probability of each quarter turn (90°, 180°, 270°); the rest stays upright.
    p_quarter_turn: float = 0.08


class SyntheticViews:
    """``views(img)`` returns a new synthetic photo of ``img`` (RGB), drawn reproducibly."""

    def __init__(self, other: OtherImage, seed: int = 0, config: ViewConfig | None = None) -> None:
        self.other = other
        self.rng = random.Random(seed)
        self.config = config or ViewConfig()

    def __call__(self, img: Image.Image) -> Image.Image:
        rng, cfg = self.rng, self.config
        nprng = np.random.default_rng(rng.randrange(2**32))
        obj = np.asarray(img.convert("RGB"))
        if rng.random() < cfg.p_frame:
            obj = _frame(obj, rng)
        canvas = self._background(max(img.size), rng, nprng)
        if rng.random() < cfg.p_others:
            for _ in range(rng.randint(1, 2)):
                other = np.asarray(self.other(rng).convert("RGB"))
                _paste(canvas, other, _quad(canvas, other, rng, cfg, others=True), rng)
        quad = _quad(canvas, obj, rng, cfg)
        if rng.random() < cfg.p_bend:
            obj = _bend(obj, nprng)
        _paste(canvas, obj, quad, rng)
        if rng.random() < cfg.p_label:
            _label(canvas, quad, rng)
        if rng.random() < cfg.p_occluder:
            _occlude(canvas, quad, np.asarray(self.other(rng).convert("RGB")), rng)
        out = self._light(canvas, quad, rng, nprng)
        out = self._sensor(out, rng, nprng)
        view = Image.fromarray(out)
        turn = rng.random()
        for k, angle in enumerate((90, 180, 270), start=1):
            if turn < k * cfg.p_quarter_turn:
                return view.rotate(angle, expand=True)
        return view

    def _background(self, side: int, rng: random.Random, nprng: np.random.Generator) -> np.ndarray:
        width, height = _canvas_size(side, rng)
        if rng.random() < self.config.p_clutter:
            scene = np.asarray(self.other(rng).convert("RGB"))
            return _cover_crop(scene, width, height, rng)
        # a wall: one colour, a gentle gradient of light, a little texture
        colour = np.array([rng.randint(40, 235) for _ in range(3)], dtype=np.float32)
        ramp = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.2), width, dtype=np.float32)
        wall = colour[None, None, :] * ramp[None, :, None] * np.ones((height, 1, 1), np.float32)
        wall += nprng.normal(0, rng.uniform(1, 6), wall.shape).astype(np.float32)
        return np.clip(wall, 0, 255).astype(np.uint8)

    def _light(
        self, img: np.ndarray, quad: np.ndarray, rng: random.Random, nprng: np.random.Generator
    ) -> np.ndarray:
        cfg = self.config
        out: np.ndarray = img.astype(np.float32)
        if rng.random() < cfg.p_glass:
            # behind glass: a faint, blurred reflection of another scene over the object
            scene = _cover_crop(
                np.asarray(self.other(rng).convert("RGB")), img.shape[1], img.shape[0], rng
            )
            scene = cv2.GaussianBlur(scene, (0, 0), rng.uniform(1.0, 4.0)).astype(np.float32)
            mask = _region_mask(img.shape, quad, grow=1.1)[..., None]
            alpha = np.float32(rng.uniform(0.08, 0.3)) * mask
            out = out * (1 - alpha) + scene[:, ::-1] * alpha  # mirrored, as reflected
        if rng.random() < cfg.p_glare:
            out += _glare(img.shape, quad, rng)[..., None] * rng.uniform(80, 220)
        if rng.random() < cfg.p_cast:
            out *= np.array([rng.uniform(0.75, 1.25) for _ in range(3)], np.float32)
        gain, bias = rng.uniform(*cfg.gain), rng.uniform(*cfg.offset)
        out = out * gain + bias
        if rng.random() < cfg.p_pale:
            # pale, low contrast: watercolour, snow, a washed-out print, haze
            keep = rng.uniform(0.3, 0.65)
            out = out * keep + rng.uniform(150, 235) * (1 - keep)
        if rng.random() < cfg.p_grey:
            grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
            out = np.repeat(grey[..., None], 3, axis=2)
        out = np.clip(out, 0, 255)
        gamma = rng.uniform(*cfg.gamma)
        out = 255.0 * (out / 255.0) ** gamma
        if rng.random() < cfg.p_vignette:
            out *= _vignette(img.shape, rng.uniform(0.2, 0.6))[..., None]
        return np.clip(out, 0, 255).astype(np.uint8)

    def _sensor(
        self, img: np.ndarray, rng: random.Random, nprng: np.random.Generator
    ) -> np.ndarray:
        cfg = self.config
        if rng.random() < cfg.p_blur:
            if rng.random() < 0.5:
                img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.5))
            else:
                img = cv2.filter2D(img, -1, _motion_kernel(rng.randint(3, 11), rng.uniform(0, 180)))
        if rng.random() < cfg.p_lowres:
            h, w = img.shape[:2]
            f = rng.uniform(0.3, 0.7)
            small = cv2.resize(
                img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA
            )
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if rng.random() < cfg.p_noise:
            noise = nprng.normal(0, rng.uniform(2, 12), img.shape)
            img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        if rng.random() < cfg.p_jpeg:
            quality = rng.randint(*cfg.jpeg_quality)
            ok, data = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
            if decoded is not None:
                img = decoded[:, :, ::-1]
        return np.ascontiguousarray(img)


def _canvas_size(side: int, rng: random.Random) -> tuple[int, int]:
    aspect = rng.choice((4 / 3, 3 / 4, 16 / 9, 9 / 16, 1.0, 3 / 2))
    if aspect >= 1:
        return side, max(16, round(side / aspect))
    return max(16, round(side * aspect)), side


def _cover_crop(img: np.ndarray, width: int, height: int, rng: random.Random) -> np.ndarray:
    """A random crop of ``img`` at the canvas's aspect, resized to fill it."""
    h, w = img.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    crop_w = min(w, max(8, int(min(w, h * width / height) * scale)))
    crop_h = min(h, max(8, int(crop_w * height / width)))
    x, y = rng.randint(0, w - crop_w), rng.randint(0, h - crop_h)
    crop = img[y : y + crop_h, x : x + crop_w]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA).copy()


def _quad(
    canvas: np.ndarray, obj: np.ndarray, rng: random.Random, cfg: ViewConfig, others: bool = False
) -> np.ndarray:
    """Where the object's four corners land: a rectangle of the drawn area, moved, tilted
    and pulled into perspective. ``others``: an image beside the object, never larger."""
    ch, cw = canvas.shape[:2]
    oh, ow = obj.shape[:2]
    low, high = cfg.small_area if rng.random() < cfg.p_small else cfg.area
    if others:
        low, high = 0.05, 0.3
    area = np.exp(rng.uniform(np.log(low), np.log(high))) * cw * ch
    w = np.sqrt(area * ow / oh)
    h = w * oh / ow
    scale = min(1.0, 1.15 * cw / w, 1.15 * ch / h)  # at most a little larger than the canvas
    w, h = w * scale, h * scale
    cx = rng.uniform(min(w / 2, cw / 2), max(cw - w / 2, cw / 2))
    cy = rng.uniform(min(h / 2, ch / 2), max(ch - h / 2, ch / 2))
    corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], np.float32) / 2
    angle = np.deg2rad(rng.uniform(-cfg.tilt, cfg.tilt))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    corners = corners @ rot.T
    strength = rng.uniform(*cfg.perspective)
    jitter = np.array([[rng.uniform(-1, 1) * w, rng.uniform(-1, 1) * h] for _ in range(4)])
    corners += (strength / 2 * jitter).astype(np.float32)
    return corners + np.array([cx, cy], np.float32)


def _paste(canvas: np.ndarray, obj: np.ndarray, quad: np.ndarray, rng: random.Random) -> None:
    """Warp ``obj`` onto ``canvas`` (in place) so its corners land on ``quad``."""
    h, w = obj.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    matrix = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    size = (canvas.shape[1], canvas.shape[0])
    flags = cv2.INTER_AREA if rng.random() < 0.5 else cv2.INTER_LINEAR
    warped = cv2.warpPerspective(obj, matrix, size, flags=flags)
    mask = cv2.warpPerspective(np.ones((h, w), np.float32), matrix, size, flags=cv2.INTER_LINEAR)
    mask = mask[..., None]
    canvas[:] = (canvas * (1 - mask) + warped * mask).astype(np.uint8)


def _frame(obj: np.ndarray, rng: random.Random) -> np.ndarray:
    """A picture frame (wood, gilt, black or white) and sometimes a mat inside it."""
    h, w = obj.shape[:2]
    out = obj
    if rng.random() < 0.4:
        mat = max(2, int(rng.uniform(0.03, 0.12) * max(h, w)))
        tone = rng.randint(200, 250)
        out = cv2.copyMakeBorder(out, mat, mat, mat, mat, cv2.BORDER_CONSTANT, value=(tone,) * 3)
    base = rng.choice(((120, 80, 40), (200, 160, 60), (20, 20, 20), (235, 235, 235)))
    colour = tuple(int(np.clip(c + rng.randint(-25, 25), 0, 255)) for c in base)
    width = max(2, int(rng.uniform(0.02, 0.1) * max(h, w)))
    framed = cv2.copyMakeBorder(out, width, width, width, width, cv2.BORDER_CONSTANT, value=colour)
    # a bevel: the inner edge a little darker
    cv2.rectangle(
        framed, (width - 1, width - 1), (framed.shape[1] - width, framed.shape[0] - width),
        tuple(int(c * 0.6) for c in colour), max(1, width // 4),
    )  # fmt: skip
    return framed


def _label(canvas: np.ndarray, quad: np.ndarray, rng: random.Random) -> None:
    """A museum label or price tag: a light card with a few lines of dark text, beside the
    object's lower corner."""
    ch, cw = canvas.shape[:2]
    size = np.ptp(quad, axis=0)
    lw, lh = int(max(20, size[0] * rng.uniform(0.2, 0.45))), int(max(12, size[1] * 0.12))
    x = int(np.clip(quad[:, 0].max() + rng.uniform(2, 12), 0, max(0, cw - lw)))
    y = int(np.clip(quad[:, 1].max() - lh, 0, max(0, ch - lh)))
    if rng.random() < 0.5:  # under the object instead
        x = int(np.clip(quad[:, 0].min(), 0, max(0, cw - lw)))
        y = int(np.clip(quad[:, 1].max() + rng.uniform(2, 10), 0, max(0, ch - lh)))
    tone = rng.randint(215, 255)
    cv2.rectangle(canvas, (x, y), (x + lw, y + lh), (tone, tone, tone - rng.randint(0, 20)), -1)
    lines = rng.randint(1, 3)
    for i in range(lines):
        text = "".join(rng.choice(string.ascii_letters + "  ") for _ in range(rng.randint(6, 18)))
        scale = max(0.2, lh / (lines * 30))
        cv2.putText(
            canvas, text, (x + 2, y + int((i + 0.8) * lh / lines)), cv2.FONT_HERSHEY_SIMPLEX,
            scale, (30, 30, 30), 1, cv2.LINE_AA,
        )  # fmt: skip


def _occlude(canvas: np.ndarray, quad: np.ndarray, other: np.ndarray, rng: random.Random) -> None:
    """Something in front (a visitor, a car, a hand): a blob of another image over at most a
    quarter of the object."""
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    w, h = (x1 - x0) * rng.uniform(0.15, 0.5), (y1 - y0) * rng.uniform(0.2, 0.5)
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    mask = np.zeros(canvas.shape[:2], np.uint8)
    centre, axes = (int(cx), int(cy)), (max(2, int(w / 2)), max(2, int(h / 2)))
    cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 1, -1)
    patch = _cover_crop(other, canvas.shape[1], canvas.shape[0], rng)
    canvas[mask.astype(bool)] = patch[mask.astype(bool)]


def _bend(obj: np.ndarray, nprng: np.random.Generator) -> np.ndarray:
    """A smooth displacement of a few percent: relief, a curved page, parallax of a facade —
    what a single homography cannot undo."""
    h, w = obj.shape[:2]
    grid = nprng.normal(0, 1, (2, 4, 4)).astype(np.float32) * 0.015 * max(h, w)
    dx = cv2.resize(grid[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(grid[1], (w, h), interpolation=cv2.INTER_CUBIC)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(obj, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _region_mask(shape: tuple[int, ...], quad: np.ndarray, grow: float = 1.0) -> np.ndarray:
    centre = quad.mean(axis=0)
    grown = (quad - centre) * grow + centre
    mask = np.zeros(shape[:2], np.float32)
    cv2.fillConvexPoly(mask, np.round(grown).astype(np.int32), 1.0)
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, 0.02 * max(shape[:2])))


def _glare(shape: tuple[int, ...], quad: np.ndarray, rng: random.Random) -> np.ndarray:
    """One or two soft highlights (a lamp on varnish or glass) inside the object."""
    h, w = shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w), np.float32)
    (x0, y0), (x1, y1) = quad.min(axis=0), quad.max(axis=0)
    for _ in range(rng.randint(1, 2)):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        sx = max(2.0, (x1 - x0) * rng.uniform(0.05, 0.25))
        sy = max(2.0, (y1 - y0) * rng.uniform(0.05, 0.25))
        out += np.exp(-(((xs - cx) / sx) ** 2 + ((ys - cy) / sy) ** 2) / 2)
    return np.clip(out, 0, 1)


def _vignette(shape: tuple[int, ...], strength: float) -> np.ndarray:
    h, w = shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = ((xs / w - 0.5) ** 2 + (ys / h - 0.5) ** 2) / 0.5
    return 1.0 - strength * r


def _motion_kernel(length: int, angle: float) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    turned = cv2.warpAffine(kernel, rot, (length, length))
    return np.asarray(turned / max(float(turned.sum()), 1e-6), np.float32)
