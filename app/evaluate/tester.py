"""The test process of one run: `python -m app.evaluate.tester RUN_DIR`.

app.evaluate.suite.start_test writes `<run>/test/settings.json` and starts this process in its own
session; from then on the two meet only in the folder. The tester runs the suite
(app.evaluate.suite.run_suite) with those settings, keeping `<run>/test/status.json` up to date
(state running, progress 0..1 and the current step), and ends it finished, or failed with a
one-line reason. A failed test leaves the previous report in place.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from app.errors import one_line
from app.evaluate import suite as testsuite
from app.workspace.runs import RunError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app.evaluate.tester RUN_DIR", file=sys.stderr)
        return 2
    return execute(Path(args[0]).resolve())


def execute(run_dir: Path) -> int:
    """Test the run in run_dir; 0 when the suite finished (whether the report passed or not),
    1 when it failed."""
    import psutil

    testsuite.update_status(
        run_dir,
        state="running",
        pid=os.getpid(),
        pid_started=psutil.Process().create_time(),
        progress=0.0,
        step="starting",
        reason=None,
    )
    last = [0.0]

    def progress(fraction: float, step: str) -> None:
        # status.json is for people watching: a few writes a second are plenty.
        now = time.monotonic()
        if now - last[0] >= 0.2 or fraction >= 1.0:
            last[0] = now
            testsuite.update_status(run_dir, progress=round(fraction, 3), step=step)

    try:
        path = run_dir / testsuite.TEST_DIR / testsuite.SETTINGS
        settings = json.loads(path.read_text()) if path.exists() else None
        report = testsuite.run_suite(run_dir, settings, progress=progress)
    except Exception as err:  # the test fails; the process ends normally with its reason
        traceback.print_exc()
        reason = one_line(err, plain=(RunError, ValueError)).removeprefix("run: ")
        testsuite.update_status(run_dir, state="failed", reason=reason, step="failed")
        return 1
    testsuite.update_status(
        run_dir,
        state="finished",
        progress=1.0,
        step="done",
        passed=report["passed"],
        report=str(run_dir / testsuite.TEST_DIR / testsuite.REPORT_JSON),
        reason=None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
