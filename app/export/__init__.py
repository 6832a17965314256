"""Exports of a trained run: model formats, parity with the engine, standalone projects."""
