"""Training: the settings a graph is trained with and the runner process of one run."""
