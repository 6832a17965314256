"""`python -m app.serve FOLDER`: the warm server of a run or export folder, on a free local
port, stopping after LAYERFLOW_SERVE_IDLE seconds without a request (client.start starts it)."""

from __future__ import annotations

import os
import sys

from app.serve.client import IDLE_ENV, WARM_IDLE
from app.serve.server import serve

if __name__ == "__main__":
    serve(sys.argv[1], idle=float(os.environ.get(IDLE_ENV, WARM_IDLE)), announce=print)
