"""LayerFlow's engine: the graph document and everything derived from it.

Nothing here imports Streamlit, and importing it does not import TensorFlow; only building a
Keras model (app.builder) or importing one (app.keras_import) does.
"""

from app.analysis import Analysis, analyze
from app.graph import GraphDocument, load, parse, save
from app.problems import GraphError, Problem

__all__ = ["Analysis", "GraphDocument", "GraphError", "Problem", "analyze", "load", "parse", "save"]
