"""The graph document and everything derived from it in pure Python: edits, shapes, rules,
analysis, layout, generated code, the canvas and the component catalogue.

Nothing in this package imports TensorFlow; the shapes of generic Keras layers and custom code
come from app.keras.probe, which runs in a child process.
"""
