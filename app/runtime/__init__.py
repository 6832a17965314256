"""The runtime an exported project carries verbatim: preprocessing (fit, transform and its Keras
layers), the training helpers and the predictor. Dependency-light, and free of the rest of the
engine, so that a project folder works without LayerFlow installed."""
