"""Exports of a trained run: the export and its gate (`exporter`), the model formats
(`formats`), parity with the engine (`parity`), the standalone project (`project`), export
folders and DVC records (`records`)."""
