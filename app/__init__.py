"""LayerFlow's engine: the graph document and everything derived from it.

Nothing here imports Streamlit, and importing it does not import TensorFlow; only building a
Keras model (app.keras.builder) or importing one (app.keras.importer) does.
"""

from app.graph.analysis import Analysis, analyze
from app.graph.document import GraphDocument, load, parse, save
from app.graph.problems import GraphError, Problem


def __getattr__(name: str):
    # The training callback imports Keras; load it only when someone asks for it.
    if name == "LayerFlowCallback":
        from app.keras.livestats import LayerFlowCallback

        return LayerFlowCallback
    raise AttributeError(f"module 'app' has no attribute {name!r}")


__all__ = [
    "LayerFlowCallback",
    "Analysis",
    "GraphDocument",
    "GraphError",
    "Problem",
    "analyze",
    "load",
    "parse",
    "save",
]
