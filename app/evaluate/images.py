"""Pictures in a report, as base64 PNGs: a model input image (`image_png`), a mask of class
ids in one colour per class (`mask_png`, PALETTE) and a saliency map laid over its image
(`saliency_png`). Small images are scaled up (nearest) to about THUMBNAIL pixels a side, large
ones down to THUMBNAIL_MAX.

Importing this module does not import TensorFlow or Pillow.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np

THUMBNAIL = 96  # small images are scaled up (nearest) to about this many pixels a side
THUMBNAIL_MAX = 160


def _png(pixels: np.ndarray) -> str:
    """A uint8 (h, w) or (h, w, 3) array as a base64 PNG, scaled up (nearest) when tiny and
    down when large."""
    from PIL import Image

    image = Image.fromarray(pixels)
    side = max(image.size)
    if side < THUMBNAIL:
        factor = math.ceil(THUMBNAIL / side)
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    elif side > THUMBNAIL_MAX:
        image.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _pixels(image: np.ndarray, spec: Any) -> np.ndarray:
    """A model input image (h, w, channels) as uint8 pixels (h, w) or (h, w, 3)."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if getattr(spec, "normalize", False) or (values.size and values.max() <= 1.0):
        values = values * 255
    pixels = np.clip(values, 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        return pixels[..., 0]
    return pixels[..., :3] if pixels.ndim == 3 else pixels


def image_png(image: np.ndarray, spec: Any = None) -> str:
    """A model input image (h, w, channels; as the preprocessing gives it) as a base64 PNG."""
    return _png(_pixels(image, spec))


PALETTE = np.array(
    [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ],
    dtype=np.uint8,
)


def mask_png(mask: np.ndarray) -> str:
    """A mask of class ids (h, w) as a base64 PNG, one colour per class."""
    return _png(PALETTE[np.asarray(mask, dtype=np.int64) % len(PALETTE)])


def saliency_png(image: np.ndarray, saliency: np.ndarray, spec: Any = None) -> str:
    """An image with its saliency (h, w, in [0, 1]) laid over it in a heat colour map."""
    pixels = _pixels(image, spec).astype(np.float64)
    base = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels
    base = base.mean(axis=-1, keepdims=True).repeat(3, axis=-1)  # grey, so the heat shows
    s = np.clip(np.asarray(saliency, dtype=np.float64), 0, 1)
    heat = np.stack([np.clip(3 * s, 0, 1), np.clip(3 * s - 1, 0, 1), np.clip(3 * s - 2, 0, 1)], -1)
    alpha = 0.7 * s[..., None]
    blended = (1 - alpha) * base + alpha * heat * 255
    return _png(np.clip(blended, 0, 255).astype(np.uint8))
