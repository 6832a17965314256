"""A search worker: runs the study's trials one after another until its budget is spent, the
study is stopped, or no trial is left. Several workers (on this machine, or on others sharing
the study's database) work on one study side by side; each takes the budget lock of its
workspace while it claims a trial, so that local workers never run more trials than asked.

`python -m app.search FOLDER` is a local worker; `layerflow search worker NAME --storage URL`
is one on any machine with the dataset in its workspace.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import time
from pathlib import Path

import optuna

from app.errors import one_line
from app.search import study as studies
from app.search.trial import TrialFailed, run_trial


class _BudgetLock:
    """The lock a worker holds from counting the trials until Optuna has made its new one."""

    def __init__(self, path: Path):
        self.handle = open(path, "a")  # noqa: SIM115 - held across the trial's start
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def release(self) -> None:
        if not self.handle.closed:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


def work(root: Path, name: str, index: int | None = None, say=print) -> int:
    """Run trials until none is left to run; the number run here."""
    study, spec = studies.load(root, name, worker=index)
    folder = studies.folder_of(root, name)
    done = 0
    ended: list[int] = []  # SIGTERM: the running trial stops (its run says so), then the worker
    signal.signal(signal.SIGTERM, lambda signum, frame: ended.append(signum))
    while not ended:
        lock = _BudgetLock(folder / studies.BUDGET_LOCK)
        try:
            if study.user_attrs.get(studies.STOPPING):
                say(f"search {name}: stopped")
                break
            spent = studies.counted(study)
            if spent >= spec.trials:
                say(f"search {name}: all {spec.trials} trials run or running")
                break
            if studies.exhausted(study, spec):
                say(f"search {name}: {len(study.trials)} trials tried and only {spent} could "
                    "train; widen the space or loosen the constraints")  # fmt: skip
                break

            mine: list[int] = []

            def objective(trial: optuna.Trial, lock=lock, mine=mine, spent=spent):
                mine.append(trial.number)
                lock.release()  # the trial exists: the next worker may count it
                say(f"trial {trial.number}: started ({spent + 1} of {spec.trials})")
                try:
                    return run_trial(trial, root, spec)
                except (optuna.TrialPruned, TrialFailed) as error:
                    if isinstance(error, TrialFailed):
                        trial.set_user_attr("reason", str(error))
                    raise
                except Exception as error:  # a bug, or TensorFlow's: the trial fails, one line
                    trial.set_user_attr("reason", one_line(error))
                    raise

            started = time.time()
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        finally:
            lock.release()
        done += 1
        if mine:
            last = study.get_trials(deepcopy=False)[mine[0]]
            reason = last.user_attrs.get("reason")
            say(f"trial {last.number}: {studies.STATES[last.state.name]}"
                f"{f' ({reason})' if reason else ''} in {time.time() - started:.0f}s")  # fmt: skip
    return done


def main(argv: list[str] | None = None) -> int:
    """`python -m app.search FOLDER`: a local worker of the study in FOLDER."""
    from app.paths import workspace_root

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m app.search FOLDER", file=sys.stderr)
        return 2
    index = os.environ.get("LAYERFLOW_SEARCH_WORKER")
    work(workspace_root(), Path(args[0]).name, int(index) if index else None,
         say=lambda line: print(line, flush=True))  # fmt: skip
    return 0
