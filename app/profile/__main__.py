"""`python -m app.profile FOLDER`: the profiling process (app.profile.launch.run)."""

import sys
from pathlib import Path

from app.profile.launch import run

sys.exit(run(Path(sys.argv[1])))
