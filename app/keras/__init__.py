"""Everything that needs TensorFlow: the model builder, the shape probe, Keras import, the
live-statistics callback and the tf.data pipelines. The Streamlit server never imports it."""

from app.keras import probe  # noqa: F401  (registers Keras' own shapes with app.graph.shapes)
