"""tf.data input pipelines: batches of (model inputs, targets) with the preprocessing applied.

`make_dataset` chooses how the rows reach the model:
  - in memory, when they fit in `memory_limit_bytes`: `transform` computes every input once
    (images decoded in parallel), which is the cache, and batches are sliced (or gathered in a
    fresh order each epoch, in training) from it;
  - images and masks decoded from disk as they go, in parallel, when the decoded images would
    not fit;
  - streamed from disk, for a table file larger than the limit (or one read only in part): a
    CSV is read in blocks of 1 MB whose lines are parsed by tf.io.decode_csv, blocks in
    parallel, and the fitted state is applied by the same Keras layers an exported model uses;
    a Parquet file is read chunk by chunk;
  - windows of a time series are gathered from the rows by their start positions (tf.data
    windows that hold each row once, not once per window).
Shuffling and augmentation (flips, rotations, zooms) happen only when `training`.

TensorFlow and Keras are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.data.sources import DataError, Source
from app.runtime.config import FeatureSpec, FittedState, PreprocessConfig, check_config, input_names
from app.runtime.images import image_loader, mask_loader, scaled
from app.runtime.layers import keras_preprocessing
from app.runtime.tables import table_encoding
from app.runtime.training import augmenter
from app.runtime.transform import (
    affine,
    iter_transform,
    transform,
    transform_series,
    window_starts,
)

if TYPE_CHECKING:
    import tensorflow as tf

# Up to this many rows, batches come from per-row slices (nothing to trace); above it, whole
# batches are sliced or gathered at once, which is several times faster per row.
PER_ROW_LIMIT = 50_000
CSV_BLOCK_BYTES = 1 << 20
STREAM_SHUFFLE_BUFFER = 65_536


def make_dataset(
    config: PreprocessConfig,
    state: FittedState,
    source: Source,
    index: Sequence[int],
    batch_size: int = 32,
    training: bool = False,
    seed: int = 0,
    memory_limit_bytes: int = 2**30,
) -> tf.data.Dataset:
    """Batches of (inputs by name, targets) for the rows `index` of a source.

    Inputs and targets are those of `app.runtime.transform.transform` (shapes per sample as
    `input_spec` gives them); without a target the batches are the inputs alone. Rows come in
    order of row number unless `training`, which shuffles them (differently each epoch, the
    same way for the same seed) and augments images.

    Args:
        config, state: the preprocessing settings and their fitted state.
        source: the data, as `read_source` gives it.
        index: the rows to use (a split from `make_splits`).
        batch_size: samples per batch (the last batch may be smaller).
        training: shuffle and augment.
        seed: the seed of the shuffle and of the augmentation.
        memory_limit_bytes: data larger than this is streamed from disk instead of held in
            memory: a table file larger than it, or images whose decoded pixels are.
    """
    import tensorflow as tf

    check_config(config)
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("memory_limit_bytes", memory_limit_bytes, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(
                f"Received an invalid value for `{name}`, expected an integer >= {low}. "
                f"Received: {name}={value!r}"
            )
    index = sorted(int(i) for i in index)
    if not index:
        raise ValueError("Received an empty `index`; a dataset needs at least one row")
    if config.window is not None:
        dataset = _window_dataset(config, state, source, index, batch_size, training, seed)
    elif _streams_table(config, source, memory_limit_bytes):
        # decode_csv reads UTF-8 only and parses no dates: such tables go chunk by chunk.
        dates = any(spec.kind == "date" for spec in config.features)
        if table_encoding(Path(source.path)) != "utf-8" or dates:
            dataset = _chunk_stream(config, state, source, index, batch_size, training, seed)
        else:
            dataset = _csv_stream(config, state, source, index, batch_size, training, seed)
    elif _decoded_bytes(config, len(index)) > memory_limit_bytes:
        dataset = _file_dataset(config, state, source, index, batch_size, training, seed)
    else:
        inputs, targets = transform(config, state, source, index)
        dataset = _array_dataset(inputs, targets, batch_size, training, seed)
    augment = augmenter(config, seed) if training else None
    if augment is not None:
        dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _streams_table(config: PreprocessConfig, source: Source, memory_limit_bytes: int) -> bool:
    if source.kind != "table" or source.path is None:
        return False
    if any(spec.kind == "image" for spec in config.features) or config.target_kind == "mask":
        return False  # a table of image paths is small; its images stream from disk anyway
    return source.sampled or Path(source.path).stat().st_size > memory_limit_bytes


def _decoded_bytes(config: PreprocessConfig, rows: int) -> int:
    """What the decoded images and masks of `rows` samples take in memory (float32/int32)."""
    per_row = 0
    for spec in config.features:
        if spec.kind == "image":
            per_row += spec.height * spec.width * spec.channels * 4
            if config.target_kind == "mask":
                per_row += spec.height * spec.width * 4
    return per_row * rows


# In memory


def _array_dataset(
    inputs: dict[str, np.ndarray],
    targets: np.ndarray | None,
    batch_size: int,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    import tensorflow as tf

    data: Any = inputs if targets is None else (inputs, targets)
    rows = len(next(iter(inputs.values())))
    if rows <= PER_ROW_LIMIT:
        dataset = tf.data.Dataset.from_tensor_slices(data)
        if training:
            dataset = dataset.shuffle(rows, seed=seed, reshuffle_each_iteration=True)
        return dataset.batch(batch_size)
    tensors = tf.nest.map_structure(tf.constant, data)
    if not training:
        # Contiguous slices: no gather, no per-row work.
        return tf.data.Dataset.range(0, rows, batch_size).map(
            lambda start: tf.nest.map_structure(lambda t: t[start : start + batch_size], tensors),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return _shuffled_positions(rows, batch_size, seed).map(
        lambda positions: tf.nest.map_structure(lambda t: tf.gather(t, positions), tensors),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _shuffled_positions(rows: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """Batches of positions 0..rows-1 in a new order each epoch: one permutation per epoch
    rather than a shuffle buffer passing every row on its own."""
    import tensorflow as tf

    # A seeded shuffle of a small range, reshuffled on every iteration, draws each epoch's
    # seed: the same `seed` gives the same sequence of epochs.
    epoch_seeds = (
        tf.data.Dataset.range(4096)
        .shuffle(4096, seed=seed, reshuffle_each_iteration=True)
        .batch(2)
        .take(1)
    )

    def epoch(pair: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.range(rows, dtype=tf.int64), pair)
        return tf.data.Dataset.range(0, rows, batch_size).map(
            lambda start: order[start : start + batch_size]
        )

    return epoch_seeds.flat_map(epoch)


def _window_dataset(
    config: PreprocessConfig,
    state: FittedState,
    source: Source,
    index: list[int],
    batch_size: int,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    """Windows gathered from the rows by their start positions, so that the rows are held once
    (not once per window)."""
    import tensorflow as tf

    window = config.window
    assert window is not None
    features, series, positions = transform_series(config, state, source, index)
    starts = tf.constant(window_starts(config, positions))
    features, series = tf.constant(features), tf.constant(series)
    steps = tf.range(window.size, dtype=tf.int64)
    ahead = window.size + tf.range(window.horizon, dtype=tf.int64)
    count = int(starts.shape[0])
    if training:
        batches = _shuffled_positions(count, batch_size, seed)
    else:
        batches = tf.data.Dataset.range(0, count, batch_size).map(
            lambda start: tf.range(start, tf.minimum(start + batch_size, count))
        )

    def cut(positions: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        first = tf.gather(starts, positions)[:, None]
        return {"features": tf.gather(features, first + steps)}, tf.gather(series, first + ahead)

    return batches.map(cut, num_parallel_calls=tf.data.AUTOTUNE)


# Masks from disk


def _mask_ids_loader(config: PreprocessConfig, state: FittedState):
    """path -> the mask's class ids (height, width) int32, as `mask_ids` (app.runtime.transform)
    gives them."""
    import tensorflow as tf

    image = next(spec for spec in config.features if spec.kind == "image")
    load = mask_loader(image.height, image.width)
    lookup = np.zeros(256, dtype=np.int32)  # decoded masks are 8-bit
    for class_id, value in enumerate(state.mask_values or []):
        if 0 <= value < 256:
            lookup[value] = class_id
    table = tf.constant(lookup)
    return lambda path: tf.gather(table, tf.cast(load(path), tf.int32))


def _file_dataset(
    config: PreprocessConfig,
    state: FittedState,
    source: Source,
    index: list[int],
    batch_size: int,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    """Everything but the pixels in memory; images and masks decoded in parallel as they go."""
    import tensorflow as tf

    inputs, targets = transform(config, state, source, index, decode=False)
    names = input_names(config)
    images = {names[s.column]: s for s in config.features if s.kind == "image"}
    masks_from_files = (
        config.target_kind == "mask" and targets is not None and targets.dtype.kind == "U"
    )
    data: Any = inputs if targets is None else (inputs, targets)
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if training:
        # Shuffle the paths, which is cheap, before decoding.
        dataset = dataset.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
    loaders = {
        name: image_loader(spec) for name, spec in images.items() if inputs[name].dtype.kind == "U"
    }
    mask_of = _mask_ids_loader(config, state) if masks_from_files else None

    def decode(*element: Any) -> Any:
        row_inputs = dict(element[0])
        for name, load in loaders.items():
            row_inputs[name] = load(row_inputs[name])
        if len(element) == 1:
            return row_inputs
        return row_inputs, element[1] if mask_of is None else mask_of(element[1])

    def scale(*batch: Any) -> Any:
        batch_inputs = dict(batch[0])
        for name in loaders:
            batch_inputs[name] = scaled(batch_inputs[name], images[name])
        return batch_inputs if len(batch) == 1 else (batch_inputs, batch[1])

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    return dataset.map(scale, num_parallel_calls=tf.data.AUTOTUNE)


# Streaming tables


def _chunk_stream(
    config: PreprocessConfig,
    state: FittedState,
    source: Source,
    index: list[int],
    batch_size: int,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    """A Parquet table chunk by chunk through `iter_transform` (exactly `transform`)."""
    import tensorflow as tf

    first_inputs, first_targets, _ = next(iter_transform(config, state, source, index[:1]))

    def signature(array: np.ndarray) -> tf.TensorSpec:
        return tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype))

    inputs_signature = {name: signature(a) for name, a in first_inputs.items()}
    output_signature: Any = inputs_signature
    if first_targets is not None:
        output_signature = (inputs_signature, signature(first_targets))

    def parts():
        for inputs, targets, _ in iter_transform(config, state, source, index):
            yield inputs if targets is None else (inputs, targets)

    dataset = tf.data.Dataset.from_generator(parts, output_signature=output_signature)
    return _rebatched(dataset, batch_size, training, seed)


def _rebatched(dataset: tf.data.Dataset, batch_size: int, training: bool, seed: int):
    if training:
        return (
            dataset.unbatch()
            .shuffle(STREAM_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size)
        )
    return dataset.rebatch(batch_size)


def _csv_stream(
    config: PreprocessConfig,
    state: FittedState,
    source: Source,
    index: list[int],
    batch_size: int,
    training: bool,
    seed: int,
) -> tf.data.Dataset:
    """A CSV or TSV streamed from disk in blocks, each block's lines parsed by one decode_csv
    call, blocks in parallel. The rows not in `index` are dropped after parsing; the fitted
    state is applied by the layers of `keras_preprocessing`. (A quoted field holding a line
    break would split its row: such a file must fit in memory.)"""
    import tensorflow as tf

    path = Path(source.path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle, delimiter=delimiter))
    columns = [spec.column for spec in config.features]
    if config.target is not None and config.target_kind != "none":
        columns.append(config.target)
    for column in columns:
        if column not in header:
            raise DataError(
                f"{path}: column '{column}' of the preprocessing settings is not in the file; "
                f"columns: {', '.join(header)}"
            )
    selected = sorted({header.index(column) for column in columns})
    kinds = {spec.column: spec for spec in config.features}
    defaults = [_csv_default(header[i], kinds.get(header[i]), config, state) for i in selected]
    keep = np.zeros(index[-1] + 2, dtype=bool)  # the extra last entry stands for "past index"
    keep[index] = True
    keep = tf.constant(keep)
    layers = keras_preprocessing(config, state)
    target_of = _stream_target(config, state)

    def parse(text: tf.Tensor) -> tuple[tf.Tensor, ...]:
        lines = tf.strings.regex_replace(tf.strings.split(text, "\n"), "\r$", "")
        # A blank line is no row (pandas skips them too).
        lines = tf.boolean_mask(lines, tf.strings.length(lines) > 0)
        return tuple(
            tf.io.decode_csv(
                lines, defaults, field_delim=delimiter, select_cols=selected, na_value=""
            )
        )

    def number(seen: tf.Tensor, fields: tuple[tf.Tensor, ...]):
        rows = tf.size(fields[0], out_type=tf.int64)
        return seen + rows, (seen, fields)

    def prepare(start: tf.Tensor, fields: tuple[tf.Tensor, ...]) -> Any:
        rows = start + tf.range(tf.size(fields[0], out_type=tf.int64))
        kept = tf.gather(keep, tf.minimum(rows, keep.shape[0] - 1))
        values = {
            header[i]: tf.boolean_mask(f, kept) for i, f in zip(selected, fields, strict=True)
        }
        inputs = _stream_inputs(config, state, layers, values)
        if target_of is None:
            return inputs
        return inputs, target_of(values[config.target])

    dataset = (
        _csv_blocks(path)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        # Row numbers are counted in order, after the blocks were parsed side by side.
        .scan(tf.constant(0, tf.int64), number)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    )
    return _rebatched(dataset, batch_size, training, seed)


def _csv_blocks(path: Path) -> tf.data.Dataset:
    """A CSV after its header, as texts of whole lines of about CSV_BLOCK_BYTES each.

    The file is read in blocks; the part of a block after its last line break is carried over
    to the next. Reading blocks is several times faster than TextLineDataset, which passes
    every line through tf.data on its own; and only the carrying over is done in order, the
    splitting into lines and parsing are done by parallel map calls.
    """
    import tensorflow as tf

    size = path.stat().st_size
    with path.open("rb") as handle:
        header = len(handle.readline())
    body = size - header
    rest = body % CSV_BLOCK_BYTES  # FixedLengthRecordDataset wants whole blocks
    blocks = tf.data.Dataset.from_tensors(tf.constant("\n"))  # ends the last line
    if rest:
        tail = tf.data.FixedLengthRecordDataset(str(path), rest, header_bytes=size - rest)
        blocks = tail.concatenate(blocks)
    if body >= CSV_BLOCK_BYTES:
        whole = tf.data.FixedLengthRecordDataset(
            str(path), CSV_BLOCK_BYTES, header_bytes=header, footer_bytes=rest
        )
        blocks = whole.concatenate(blocks)

    def carry(carried: tf.Tensor, block: tf.Tensor):
        after_last_break = tf.strings.regex_replace(block, "(?s)^.*\n", "")
        cut = tf.strings.length(block) - tf.strings.length(after_last_break)
        lines = tf.strings.join([carried, tf.strings.substr(block, 0, cut)])
        # A block without a line break is the middle of one long line: carry it all.
        broken = cut > 0
        return (
            tf.where(broken, after_last_break, tf.strings.join([carried, block])),
            tf.where(broken, lines, tf.constant("")),
        )

    return blocks.scan(tf.constant(""), carry)


def _csv_default(
    column: str, spec: FeatureSpec | None, config: PreprocessConfig, state: FittedState
) -> tf.Tensor:
    """What decode_csv parses a column as, and gives for an empty field: NaN for numbers
    (filled with the train mean later, as transform does), "" for words."""
    import tensorflow as tf

    number = tf.constant([np.nan], tf.float64)
    text = tf.constant([""], tf.string)
    if spec is None:  # the target
        if config.target_kind == "values":
            return number
        return number if _numeric_classes(state) else text
    if spec.kind == "categorical":
        categories = state.columns[spec.column].categories or []
        return number if categories and isinstance(categories[0], int) else text
    return text if spec.kind == "text" else number


def _numeric_classes(state: FittedState) -> bool:
    return all(_is_integer(name) for name in state.classes or [])


def _is_integer(name: str) -> bool:
    try:
        return float(name).is_integer()
    except ValueError:
        return False


def _stream_inputs(
    config: PreprocessConfig,
    state: FittedState,
    layers: dict[str, list],
    values: dict[str, tf.Tensor],
) -> dict[str, tf.Tensor]:
    """Parsed columns -> model inputs. Numbers get transform's float32 arithmetic, all number
    columns at once; categories and text go through keras_preprocessing's lookup layers."""
    import tensorflow as tf

    names = input_names(config)
    numbers = [s for s in config.features if s.kind in ("numeric", "passthrough")]
    parts: dict[str, tf.Tensor] = {}
    if numbers:
        states = [state.columns[spec.column] for spec in numbers]
        means = tf.constant([column.mean for column in states], tf.float64)
        offsets, scales = zip(
            *(affine(spec, column) for spec, column in zip(numbers, states, strict=True)),
            strict=True,
        )
        matrix = tf.stack([values[spec.column] for spec in numbers], axis=1)
        matrix = tf.cast(tf.where(tf.math.is_nan(matrix), means, matrix), tf.float32)
        matrix = (matrix - tf.constant(np.float32(offsets))) / tf.constant(np.float32(scales))
        for i, spec in enumerate(numbers):
            parts[spec.column] = matrix[:, i : i + 1]
    inputs = {}
    for spec in config.features:
        if spec.kind not in ("categorical", "text"):
            continue
        column = state.columns[spec.column]
        value = values[spec.column][:, None]
        if value.dtype == tf.float64:
            # Missing or fractional values cannot be a whole-number category: make them unseen.
            unseen = min(-1, min(column.categories or [0]) - 1)
            whole = tf.logical_and(tf.math.is_finite(value), tf.equal(value, tf.floor(value)))
            value = tf.cast(tf.where(whole, value, tf.constant(unseen, tf.float64)), tf.int64)
        for layer in layers[spec.column if spec.kind == "categorical" else names[spec.column]]:
            value = layer(value)
        if spec.kind == "text":
            inputs[names[spec.column]] = value
        else:
            parts[spec.column] = tf.cast(value, tf.float32)
    tabular = [parts[spec.column] for spec in config.features if spec.column in parts]
    if not tabular:
        return inputs
    # Numbers only: the matrix already is the features, in their order.
    features = matrix if len(numbers) == len(tabular) else tf.concat(tabular, axis=-1)
    return {"features": features, **inputs}


def _stream_target(config: PreprocessConfig, state: FittedState):
    """The function turning a parsed target column into targets, as transform does."""
    import tensorflow as tf

    if config.target is None or config.target_kind == "none":
        return None
    if config.target_kind == "values":
        return lambda value: tf.cast(value, tf.float32)
    classes = state.classes or []
    numeric = _numeric_classes(state)
    keys = [int(float(name)) for name in classes] if numeric else list(classes)
    missing = min([-1, *keys]) - 1 if numeric else ""  # a key no class has
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.int64 if numeric else tf.string),
            tf.range(len(keys), dtype=tf.int32),
        ),
        default_value=-1,
    )

    def classes_of(value: tf.Tensor) -> tf.Tensor:
        if numeric:
            missing_value = tf.constant(float(missing), tf.float64)
            value = tf.cast(tf.where(tf.math.is_nan(value), missing_value, value), tf.int64)
        ids = table.lookup(value)
        check = tf.debugging.assert_non_negative(
            ids,
            message=f"Column '{config.target}' holds a class that is not one of the train "
            "split's classes",
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    return classes_of
