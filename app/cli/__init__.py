"""`layerflow`, the command line over the engine."""
