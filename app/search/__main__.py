"""`python -m app.search FOLDER`: a local search worker (app.search.worker)."""

import sys

from app.search.worker import main

sys.exit(main())
