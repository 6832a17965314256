"""Serving a trained model: one warm process per run or export that loads it once and answers
predictions on raw inputs over HTTP, in TensorFlow Serving's REST API.

- `protocol`: TF Serving's request and response bodies, and predictions described as class
  probabilities and top classes (NumPy only);
- `model`: the model a server answers for, a run's best checkpoint behind its preprocessing or
  an export, loaded once (TensorFlow);
- `server`: the FastAPI app, the batching of concurrent requests, the idle timeout, and the
  serving.json record (port and pid) in the run or export folder;
- `client`: finding, starting, stopping and asking a server, for the CLI and the pages (no
  TensorFlow);
- `whatif`: the rows that what-if questions about a table row ask a server to predict, and how
  the answers are read (NumPy only).

`python -m app.serve FOLDER` starts the warm server of a run or export folder (see client.start).
"""
