"""The TensorFlow.js export's demo page, served: a static file server (Python's http.server)
on 127.0.0.1 for the export's folder, in its own process, started once and found again by the
record it leaves beside the export folder (<export>.demo.json, which git ignores). It stops
after IDLE seconds without a request; the next `open_demo` starts another."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from app.files import atomic_write_text, locked
from app.workspace.runs import alive

DEMO, LOCK = ".demo.json", ".demo.lock"
HOST = "127.0.0.1"
IDLE = 1800.0  # seconds without a request before the file server stops


def open_demo(folder: Path, timeout: float = 10.0, idle: float = IDLE) -> str:
    """The URL of the export's index.html, served from 127.0.0.1 (the running server, or a new
    one)."""
    if not (folder / "index.html").is_file():
        raise ValueError(f"{folder.name}: no index.html; only a tfjs export has a demo page")
    record = folder.parent / f"{folder.name}{DEMO}"
    with locked(folder.parent / f"{folder.name}{LOCK}"):
        if record.is_file():
            known = json.loads(record.read_text())
            if alive(known["pid"], known.get("pid_started")):
                return known["url"]
        with socket.socket() as probe:  # a free port, now
            probe.bind((HOST, 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "app.export.demo", str(folder), str(port), str(idle)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    message = f"{folder.name}: the demo's file server did not start"
                    raise ValueError(message) from None
                time.sleep(0.1)
        import psutil

        url = f"http://{HOST}:{port}/index.html"
        atomic_write_text(record, json.dumps({"pid": process.pid, "url": url,
                                              "pid_started": psutil.Process(process.pid)
                                              .create_time()}) + "\n")  # fmt: skip
    return url


class _Server(http.server.HTTPServer):
    timed_out = False

    def handle_timeout(self) -> None:
        self.timed_out = True


def serve(folder: Path, port: int, idle: float) -> None:
    """Serve `folder`'s files on 127.0.0.1:`port` until `idle` seconds pass with no request."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with _Server((HOST, port), handler) as server:
        server.timeout = min(idle, 5.0)  # how often the idle time is checked
        last = time.monotonic()
        while time.monotonic() - last < idle:
            server.timed_out = False
            server.handle_request()
            if not server.timed_out:  # a request came
                last = time.monotonic()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
