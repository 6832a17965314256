"""TensorFlow Serving's REST bodies, so that clients written for TF Serving work unchanged, and
predictions described for people (class probabilities, top classes). NumPy only.

A predict request is `{"instances": [...]}` (rows: an object by input name per row, or the
value itself for a model with one input) or `{"inputs": ...}` (columns: an object of batches by
input name, or the batch itself). A table's input is named by its column. An image input takes
pixel arrays, or an encoded image file as `{"b64": "..."}`, TF Serving's way of sending bytes,
decoded here as training decodes image files. A missing number is `null`.
The answer is `{"predictions": [...]}` (a value, or an object by output name, per row) or
`{"outputs": ...}`; a bad request gets `{"error": "..."}` naming the field at fault.
See https://www.tensorflow.org/tfx/serving/api_rest.

LayerFlow's own verbs, for an autoencoder run: `:reconstruct` takes a predict body and answers
each row's `inputs` (as the model is given them), `reconstructions`, `errors` (mean squared),
`anomalous` (error above `threshold`) and, with a bottleneck, `codes`; `:decode` takes
`{"codes": [...]}` and answers their `reconstructions`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from app.jsonable import json_ready
from app.runtime.predictor import as_feed

ImageDecoder = Callable[[bytes, int, int, int], np.ndarray]  # data, height, width, channels
DTYPES = {"float32": "DT_FLOAT", "float64": "DT_DOUBLE", "int32": "DT_INT32",
          "int64": "DT_INT64", "string": "DT_STRING", "bool": "DT_BOOL"}  # fmt: skip


class RequestError(ValueError):
    """A request that cannot be answered: HTTP 400 with this one-line message."""


def parse_request(
    body: Any, specs: Sequence[Mapping[str, Any]], decode_image: ImageDecoder
) -> tuple[dict[str, np.ndarray], bool]:
    """A predict request's body -> the model's inputs by name (with the batch axis, in their
    dtypes), and whether it was columnar (`inputs`) rather than rows (`instances`)."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise RequestError(
            "the body must be a JSON object with one of `instances` (a list of rows) "
            "or `inputs` (columns)"
        )
    columnar = "inputs" in body
    names = ", ".join(_key(spec) for spec in specs)
    if columnar:
        given = body["inputs"]
        if isinstance(given, dict):
            batches = {_known(key, specs, "inputs"): value for key, value in given.items()}
        elif len(specs) == 1:
            batches = {specs[0]["name"]: given}
        else:
            raise RequestError(f"`inputs` must be an object by input name ({names})")
    else:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise RequestError("`instances` must be a non-empty list of rows")
        batches = _columns_of(rows, specs, names)
    feed = {}
    for spec in specs:
        name = spec["name"]
        where = f"inputs.{_key(spec)}" if columnar else f"instances[*].{_key(spec)}"
        if name not in batches:
            raise RequestError(f"`{where}` is missing; the inputs are: {names}")
        feed[name] = _array(batches[name], spec, where, decode_image)
    sizes = {len(value) for value in feed.values()}
    if len(sizes) > 1:
        raise RequestError(f"the inputs have different numbers of rows: {sorted(sizes)}")
    try:
        return as_feed(list(specs), feed), columnar
    except ValueError as error:
        raise RequestError(str(error)) from None


def _key(spec: Mapping[str, Any]) -> str:
    """How a request names an input: by the column it reads (a table's), else by its name."""
    return spec.get("column") or spec["name"]


def _known(key: str, specs: Sequence[Mapping[str, Any]], where: str) -> str:
    for spec in specs:
        if key in (spec["name"], spec.get("column")):
            return spec["name"]
    names = ", ".join(_key(spec) for spec in specs)
    raise RequestError(f"`{where}.{key}` is not an input of this model; the inputs are: {names}")


def _columns_of(
    rows: list[Any], specs: Sequence[Mapping[str, Any]], names: str
) -> dict[str, list[Any]]:
    by_name = [isinstance(row, dict) and not _binary(row) for row in rows]
    if not all(by_name):
        if len(specs) != 1 or any(by_name):
            raise RequestError(f"each of `instances` must be an object by input name ({names})")
        return {specs[0]["name"]: rows}
    columns: dict[str, list[Any]] = {spec["name"]: [] for spec in specs}
    for index, row in enumerate(rows):
        keys = {_known(key, specs, f"instances[{index}]"): key for key in row}
        for spec in specs:
            if spec["name"] not in keys:
                raise RequestError(
                    f"`instances[{index}].{_key(spec)}` is missing; the inputs are: {names}"
                )
            columns[spec["name"]].append(row[keys[spec["name"]]])
    return columns


def _binary(value: Any) -> bool:
    """TF Serving's way of sending bytes in JSON: {"b64": "<base64>"}."""
    return isinstance(value, dict) and set(value) == {"b64"}


def _array(
    values: Any, spec: Mapping[str, Any], where: str, decode_image: ImageDecoder
) -> np.ndarray:
    """One input's batch as an array of its dtype, naming the field when it is not one."""
    if not isinstance(values, list):
        raise RequestError(f"`{where}` must be a list (a batch), received {type(values).__name__}")
    shape = spec["shape"]
    if len(shape) == 3 and any(isinstance(v, dict) for v in values):
        values = [
            _image(v, shape, f"{where}[{i}]", decode_image) if isinstance(v, dict) else v
            for i, v in enumerate(values)
        ]
    try:
        if spec["dtype"] == "string":
            texts = np.asarray(values, dtype=object)
            if not all(isinstance(v, str) for v in texts.reshape(-1)):
                raise ValueError("expected text (JSON strings)")
            return texts
        return np.asarray(values, dtype=np.float64).astype(spec["dtype"])
    except (TypeError, ValueError) as error:
        raise RequestError(f"`{where}`: {str(error).splitlines()[0]}") from None


def _image(value: Any, shape: Sequence[Any], where: str, decode_image: ImageDecoder):
    if not _binary(value) or not isinstance(value["b64"], str):
        raise RequestError(f'`{where}` must be pixels or {{"b64": "<base64 image file>"}}')
    try:
        data = base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"`{where}.b64` is not base64") from None
    height, width, channels = shape
    try:
        return decode_image(data, height, width, channels)
    except ValueError as error:
        raise RequestError(f"`{where}.b64`: {error}") from None


def response(outputs: Mapping[str, np.ndarray], names: Sequence[str], columnar: bool) -> dict:
    """The predictions in TF Serving's shape: rows for `instances`, columns for `inputs`."""
    if columnar:
        value = outputs[names[0]] if len(names) == 1 else {n: outputs[n] for n in names}
        return {"outputs": json_ready(value)}
    if len(names) == 1:
        return {"predictions": json_ready(outputs[names[0]])}
    rows = len(outputs[names[0]])
    return {"predictions": [{n: json_ready(outputs[n][i]) for n in names} for i in range(rows)]}


def parse_codes(body: Any, spec: Mapping[str, Any]) -> np.ndarray:
    """A decode request's body -> the codes, a batch of the bottleneck's shape."""
    if not isinstance(body, dict) or set(body) != {"codes"}:
        raise RequestError("the body must be a JSON object with `codes` (a list of codes)")
    if not isinstance(body["codes"], list) or not body["codes"]:
        raise RequestError("`codes` must be a non-empty list of codes")
    codes = _array(body["codes"], spec, "codes", _no_images)
    if list(codes.shape[1:]) != list(spec["shape"]) or not np.isfinite(codes).all():
        raise RequestError(
            f"`codes` must be finite numbers of shape (n, {', '.join(map(str, spec['shape']))}), "
            f"received shape {codes.shape}"
        )
    return codes


def _no_images(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    raise ValueError("a code is numbers, not an image")


def reconstruction(
    outputs: Mapping[str, np.ndarray], errors: np.ndarray, threshold: float | None
) -> dict[str, Any]:
    """The answer of `:reconstruct`: each row's input, reconstruction, error and flag (and
    code, when the model has a bottleneck)."""
    answer = {
        "inputs": json_ready(outputs["input"]),
        "reconstructions": json_ready(outputs["reconstruction"]),
        "errors": json_ready(errors),
        "threshold": threshold,
    }
    if threshold is not None:
        answer["anomalous"] = [bool(error > threshold) for error in errors]
    if "code" in outputs:
        answer["codes"] = json_ready(outputs["code"])
    return answer


def status() -> dict:
    """GET /v1/models/<name>: one version, loaded."""
    ok = {"error_code": "OK", "error_message": ""}
    return {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": ok}]}


def metadata(name: str, specs: Sequence[Mapping[str, Any]], outputs: Sequence[str], extra: dict):
    """GET /v1/models/<name>/metadata: the serving_default signature, and what LayerFlow knows
    of the model under `layerflow` (its inputs' columns, the class names by output)."""

    def tensor(tensor_name: str, dtype: str, shape: Sequence[Any] | None) -> dict:
        if shape is None:
            return {"dtype": dtype, "tensor_shape": {"unknown_rank": True}, "name": tensor_name}
        dims = [{"size": str(-1 if d is None else d), "name": ""} for d in [None, *shape]]
        return {"dtype": dtype, "tensor_shape": {"dim": dims, "unknown_rank": False},
                "name": tensor_name}  # fmt: skip

    signature = {
        "inputs": {
            _key(s): tensor(s["name"], DTYPES.get(s["dtype"], "DT_INVALID"), s["shape"])
            for s in specs
        },
        "outputs": {n: tensor(n, "DT_FLOAT", None) for n in outputs},
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": "1"},
        "metadata": {"signature_def": {"signature_def": {"serving_default": signature}}},
        "layerflow": json_ready({"inputs": list(specs), "outputs": list(outputs), **extra}),
    }


def describe(values: Any, classes: Sequence[str] | None, top: int = 3) -> list[dict[str, Any]]:
    """One output's predictions, row by row, for people: with class names, each class's
    probability and the `top` classes, most probable first (a one-unit sigmoid is the second
    class's probability); otherwise the predicted values."""
    values = np.asarray(values, dtype=np.float64)
    rows = []
    for row in values.reshape(len(values), -1):
        if classes and len(row) == len(classes) and values.ndim == 2:
            probabilities = row
        elif classes and len(classes) == 2 and len(row) == 1 and values.ndim == 2:
            probabilities = np.array([1 - row[0], row[0]])
        else:
            rows.append({"values": json_ready(row)})
            continue
        order = np.argsort(-probabilities, kind="stable")[:top]
        rows.append(
            {
                "probabilities": {c: float(p) for c, p in zip(classes, probabilities, strict=True)},
                "top": [[classes[i], float(probabilities[i])] for i in order],
            }
        )
    return rows
