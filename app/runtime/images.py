"""Images and masks: files decoded, and arrays resized, to the sizes preprocessing asks for.

Decoding runs in parallel with tf.io and tf.data. TensorFlow is imported inside the functions,
so importing this module stays cheap. The one owner of image decoding: training pipelines
(app.keras.pipeline), preprocessing (app.runtime.transform) and exports use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf

DECODE_BATCH = 256

def decode_images(paths: Sequence[str], spec: Any) -> np.ndarray:
    """Image files -> float32 (n, height, width, channels), decoded in parallel with tf.io."""
    import tensorflow as tf

    if not len(paths):
        return np.zeros((0, spec.height, spec.width, spec.channels), dtype=np.float32)

    def decoded(load) -> tf.data.Dataset:
        return (
            tf.data.Dataset.from_tensor_slices(list(paths))
            .map(load, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(DECODE_BATCH)
        )

    try:
        # Most often every image already has the size asked for (default_config asks for the
        # commonest), and skipping the resizing saves a fifth of the time. The first image of
        # another size stops this attempt, and all are decoded again, resized.
        images = np.concatenate(
            list(decoded(image_loader(spec, resize=False)).as_numpy_iterator())
        )
    except tf.errors.OpError:
        images = np.concatenate(list(_reading(decoded(image_loader(spec)), paths)))
    images = images.astype(np.float32, copy=False)
    # The same float32 product as scaled (and keras.layers.Rescaling), without a TF op.
    return images * np.float32(1.0 / 255) if spec.normalize else images


def decode_masks(paths: Sequence[str], height: int, width: int) -> np.ndarray:
    """Mask files -> their pixel values, uint8 (n, height, width), resized nearest-neighbour."""
    import tensorflow as tf

    if not len(paths):
        return np.zeros((0, height, width), dtype=np.uint8)
    load = mask_loader(height, width)
    dataset = (
        tf.data.Dataset.from_tensor_slices(list(paths))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(DECODE_BATCH)
    )
    return np.concatenate(list(_reading(dataset, paths)))


def _reading(dataset: tf.data.Dataset, paths: Sequence[str]):
    import tensorflow as tf

    try:
        yield from dataset.as_numpy_iterator()
    except tf.errors.OpError as error:
        # tf.data does not say which element failed; name the first file that does.
        bad = next((p for p in paths if _undecodable(p)), paths[0])
        raise DataError(f"{bad}: cannot be decoded as an image ({error.message})") from None


def _undecodable(path: str) -> bool:
    import tensorflow as tf

    try:
        tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except (tf.errors.OpError, ValueError):
        return True
    return False


def image_loader(spec: Any, resize: bool = True):
    """path -> the decoded image (height, width, channels), float32, not yet scaled (that is
    done a batch at a time, by `scaled`); without `resize`, uint8 and an error for an image
    of another size.

    Resizing is bilinear without antialiasing, as keras.layers.Resizing does. It is done for
    every image, as in Keras: to the same size it changes nothing, and a per-image test whether
    it is needed costs more than it saves.
    """
    import tensorflow as tf

    size = (spec.height, spec.width)

    def load(path: tf.Tensor) -> tf.Tensor:
        return _decoded(tf.io.read_file(path), size, spec.channels, resize)

    return load


def _decoded(raw: tf.Tensor, size: tuple[int, int], channels: int, resize: bool) -> tf.Tensor:
    import tensorflow as tf

    image = tf.io.decode_image(raw, channels=channels, expand_animations=False)
    if resize:
        image = tf.image.resize(image, size, method="bilinear", antialias=False)
    return tf.ensure_shape(image, (*size, channels))


def decode_image_bytes(
    data: bytes, height: int | None, width: int | None, channels: int
) -> np.ndarray:
    """An encoded image (PNG, JPEG, GIF, BMP) -> float32 (height, width, channels), unscaled,
    decoded and resized as image files are for training (kept at its size when height or width
    is None); a DataError when it is no image."""
    import tensorflow as tf

    try:
        if height is None or width is None:
            raw = tf.io.decode_image(tf.constant(data), channels=channels, expand_animations=False)
            return raw.numpy().astype(np.float32)
        image = _decoded(tf.constant(data), (height, width), channels, resize=True)
    except (tf.errors.OpError, ValueError) as error:
        message = getattr(error, "message", str(error)).splitlines()[0]
        # TF's op errors start with "{{function_node ...}} " and end with " [Op:...]"
        message = message.rsplit("}} ", 1)[-1].split(" [Op:", 1)[0]
        raise DataError(f"cannot be decoded as an image ({message})") from None
    return image.numpy().astype(np.float32)


def scaled(images: tf.Tensor, spec: Any) -> tf.Tensor:
    import tensorflow as tf

    if not spec.normalize:
        return images
    # keras.layers.Rescaling(1 / 255) multiplies by the float32 scale; so does this.
    return images * tf.constant(1.0 / 255, tf.float32)


def mask_loader(height: int, width: int):
    import tensorflow as tf

    def load(path: tf.Tensor) -> tf.Tensor:
        mask = tf.io.decode_image(tf.io.read_file(path), channels=1, expand_animations=False)
        return _fit_mask(mask, height, width)

    return load


def _fit_mask(mask: tf.Tensor, height: int, width: int) -> tf.Tensor:
    import tensorflow as tf

    mask = tf.image.resize(mask, (height, width), method="nearest")
    return tf.ensure_shape(tf.squeeze(tf.cast(mask, tf.uint8), -1), (height, width))


def resize_image_array(array: np.ndarray, spec: Any) -> np.ndarray:
    """Images held in an array, (n, h, w) or (n, h, w, channels) -> float32 (n, height, width,
    spec.channels): alpha dropped, made grayscale or RGB as asked, resized, scaled."""
    import tensorflow as tf

    images = tf.cast(array[..., None] if array.ndim == 3 else array, tf.float32)
    images = images[..., :3] if images.shape[-1] == 4 else images
    if spec.grayscale and images.shape[-1] == 3:
        images = tf.image.rgb_to_grayscale(images)
    elif not spec.grayscale and images.shape[-1] == 1:
        images = tf.image.grayscale_to_rgb(images)
    if tuple(images.shape[1:3]) != (spec.height, spec.width):
        images = tf.image.resize(images, (spec.height, spec.width), antialias=False)
    return scaled(images, spec).numpy()


def resize_masks(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Masks held in an array (n, h, w) -> (n, height, width), nearest-neighbour, same dtype."""
    import tensorflow as tf

    if tuple(array.shape[1:3]) == (height, width):
        return array
    return tf.image.resize(array[..., None], (height, width), method="nearest")[..., 0].numpy()
