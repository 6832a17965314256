"""`layerflow train`: start a run process, then follow it (its epochs, warnings and changes of
state as lines; on a terminal, the current epoch's batches as a progress bar) until it ends."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from app.cli.command import add_command
from app.cli.output import step
from app.graph.document import load


def cmd_train(args: argparse.Namespace) -> int:
    from app.train import launch
    from app.train.settings import load_settings
    from app.workspace import runs

    doc = load(args.graph)
    settings = load_settings(args.graph).with_changes(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        strategy=args.strategy,
    )
    command = ["layerflow", "train", args.graph, "--data", args.data]
    for flag, value in (
        ("--epochs", args.epochs),
        ("--batch-size", args.batch_size),
        ("--lr", args.lr),
        ("--strategy", args.strategy),
        ("--run-dir", args.run_dir),
    ):
        if value is not None:
            command += [flag, str(value)]
    # A directory the user types is relative to where they are, not to the workspace.
    run_dir = str(Path(args.run_dir).resolve()) if args.run_dir else None
    try:
        folder = launch.create_run(doc, settings, args.data, run_dir=run_dir, command=command)
    except runs.RunError as err:
        if any("the data" in problem for problem in err.problems):
            step(f"to fit the graph to the data: layerflow data configure {args.graph} {args.data}")
        raise
    process = launch.start_run(folder)
    if args.detach:
        print(folder.name)
        return 0
    step(f"run {folder.name} in {folder} (pid {process.pid}); Ctrl-C leaves it running")
    return _follow(folder, process)


def _follow(folder: Path, process: Any) -> int:
    """Print the run's epochs, warnings and changes of state as they come, until it ends; on
    a terminal, below them, one updating line with the current epoch's batches as a bar, the
    loss and the ETA (from the batch events)."""
    import time

    from app.workspace import runs
    from app.workspace.events import read_events

    offset = 0
    epochs = runs.read_status(folder).get("epochs")
    bar = _EpochBar(folder, epochs) if sys.stdout.isatty() else None
    kinds = {"epoch", "warning", "status"} | ({"batch"} if bar else set())
    try:
        while True:
            ended = process.poll() is not None
            events, offset = read_events(folder, kinds, offset)
            for event in events:
                if bar is not None:
                    bar.show(event)
                if event["type"] == "batch":
                    continue
                line = _event_line(event, epochs)
                if line:
                    if bar is not None:
                        bar.write(line)
                    else:
                        print(line, flush=True)
            if ended:
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(
            f"\nthe run goes on; stop it with: layerflow runs stop {folder.name}", file=sys.stderr
        )
        return 130
    if bar is not None:
        bar.close()
    state = runs.status(folder)
    reason = f": {state['reason']}" if state.get("reason") else ""
    print(f"run {folder.name} {state['state']} after {state.get('epoch', 0)} epoch(s){reason}")
    return 0 if state["state"] == "finished" else 1


class _EpochBar:
    """`epoch 3/20 |#####     | 12/40  loss 0.4123  ETA 35s`, redrawn in place (tqdm): the
    batches done in the current epoch, the last logged loss, and the ETA of the whole run."""

    FORMAT = "{desc} |{bar}| {n_fmt}/{total_fmt}"

    def __init__(self, folder: Path, epochs: int | None):
        from tqdm import tqdm

        self.folder = folder
        self.epochs = epochs
        self.steps: int | None = None  # batches per epoch, which the runner says once it knows
        self.epoch_start_step = 0  # the runner's step count at the start of the epoch
        self.bar = tqdm(
            total=None,
            desc=f"epoch 1/{epochs or '?'}",
            bar_format=self.FORMAT,
            file=sys.stdout,
            leave=False,
            ncols=shutil.get_terminal_size().columns,
            nrows=shutil.get_terminal_size().lines,
        )

    def show(self, event: dict[str, Any]) -> None:
        from app.workspace import runs

        if self.steps is None:
            self.steps = runs.read_status(self.folder).get("steps")
            if self.steps:
                self.bar.reset(total=self.steps)
        if event["type"] == "batch":
            # A resumed run's process counts its steps from 0 again, at the start of an epoch.
            batch = event["step"]
            done = (batch - 1) % self.steps + 1 if self.steps else batch - self.epoch_start_step
            self._draw(event["epoch"], done, event)
        elif event["type"] == "epoch":
            if self.steps is None:  # not said: as many as this epoch had
                self.steps = event["step"] - self.epoch_start_step or None
            self.epoch_start_step = event["step"]
            if self.epochs is None or event["epoch"] + 1 < self.epochs:
                self.bar.reset(total=self.steps)
                self._draw(event["epoch"] + 1, 0, event)

    def _draw(self, epoch: int, done: int, event: dict[str, Any]) -> None:
        loss = (event.get("metrics") or {}).get("loss")
        eta = event.get("eta_s")
        after = f"  loss {loss:.4g}" if isinstance(loss, int | float) else ""
        after += f"  ETA {eta:.0f}s" if eta is not None else ""
        self.bar.set_description_str(f"epoch {epoch + 1}/{self.epochs or '?'}", refresh=False)
        self.bar.bar_format = self.FORMAT + after  # tqdm's postfix would start with a comma
        self.bar.n = max(0, min(done, self.steps or done))
        # The terminal's size each time (it may change); 80x24 where it says 0x0.
        self.bar.ncols, self.bar.nrows = shutil.get_terminal_size()
        self.bar.refresh()

    def write(self, line: str) -> None:
        """A line printed above the bar, which is then drawn again."""
        self.bar.write(line, file=sys.stdout)

    def close(self) -> None:
        self.bar.close()


def _event_line(event: dict[str, Any], epochs: int | None) -> str | None:
    if event["type"] == "warning":
        return f"warning: {event['message']}"
    if event["type"] == "status":  # the end is said by the last line
        return (
            None
            if event["state"] in ("finished", "failed", "stopped")
            else (f"... {event['state']}")
        )
    metrics = "  ".join(
        f"{k} {v:.4g}" for k, v in event.get("metrics", {}).items() if isinstance(v, int | float)
    )
    eta = event.get("eta_s")
    timing = f"  {event['duration_s']:.1f}s" if event.get("duration_s") is not None else ""
    timing += f"  ETA {eta:.0f}s" if eta is not None else ""
    return f"epoch {event['epoch'] + 1}/{epochs or '?'}  {metrics}{timing}"


def register(commands: argparse._SubParsersAction) -> None:
    """Add `train` to the parser."""
    train = add_command(
        commands,
        "train",
        cmd_train,
        "Train a graph on a dataset in a run process.",
        json_flag=False,
    )
    train.add_argument("graph")
    train.add_argument("--data", required=True, help="the dataset to train on")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="the learning rate")
    train.add_argument("--strategy", help="default, mirrored or multi_worker")
    train.add_argument("--run-dir", help="the run directory, inside the workspace")
    train.add_argument("--detach", action="store_true", help="print the run id and return")
