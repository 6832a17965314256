"""What an export can be: its formats and TFLite quantizations (`check_format` refuses the
rest), the error every step of an export raises (ExportError), and the run's test report that
an export reads (REPORT, relative to the run's directory)."""

from __future__ import annotations

from pathlib import Path

FORMATS = ("keras", "savedmodel", "tflite", "onnx", "tfjs", "project")
QUANTIZATIONS = ("dynamic", "float16", "int8")
REPORT = Path("test") / "report.json"


class ExportError(ValueError):
    """An export that cannot be made; one line naming the run (or file) and the fault."""


def check_format(fmt: str, quantize: str | None = None) -> None:
    """Raise ExportError for an unknown format or quantization, or a quantized non-TFLite one."""
    if fmt not in FORMATS:
        raise ExportError(
            f"Received an invalid value for `format`, expected one of {', '.join(FORMATS)}. "
            f"Received: format={fmt!r}"
        )
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ExportError(
            f"Received an invalid value for `quantize`, expected one of "
            f"{', '.join(QUANTIZATIONS)} or None. Received: quantize={quantize!r}"
        )
    if quantize is not None and fmt != "tflite":
        raise ExportError(
            f"Received an invalid value for `quantize`: only tflite exports are quantized. "
            f"Received: quantize={quantize!r} with format={fmt!r}"
        )
