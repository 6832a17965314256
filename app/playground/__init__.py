"""The Playground: two-dimensional toy data and a small network trained on it step by step, in
the spirit of the Neural Network Playground, for people learning what layers do.

  data     the toy sets (circles, XOR, two spirals, Gaussian blobs), with noise and a split
  network  the network (scikit-learn's MLPClassifier, trained a step at a time with
           partial_fit), its decision boundary, its losses and each hidden unit's response map
  project  "Open in LayerFlow": the network as a project's graph, on the toy set as a dataset

Small enough to run in the app's own process; no TensorFlow.
"""
