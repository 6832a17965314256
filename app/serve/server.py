"""The model server: FastAPI on uvicorn, in TensorFlow Serving's REST API (see protocol).

One thread calls the model. Requests that arrive while it is busy wait in a queue and are
predicted together as one batch (up to MAX_BATCH_ROWS rows), so concurrent clients share calls
to the model; each gets its own rows back. Bodies over LAYERFLOW_SERVE_MAX_BYTES (default 32 MiB)
are refused with 413 before they are read in full.

While it runs, `serving.json` in the run or export folder records its URL, port and pid, so
that the app, the CLI and other tabs find it (client.running); it is removed when the server
stops. With an idle timeout the server stops by itself after that many seconds without a
request.

An autoencoder run also answers LayerFlow's `:reconstruct` and `:decode` (see protocol).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.evaluate.anomaly import reconstruction_errors
from app.files import atomic_write_text
from app.jsonable import json_ready
from app.serve import protocol
from app.serve.client import RECORD, read_record, running
from app.serve.model import Served, load_served

MAX_BYTES_ENV = "LAYERFLOW_SERVE_MAX_BYTES"
MAX_BYTES = 32 * 2**20
MAX_BATCH_ROWS = 256


@dataclass
class _Job:
    feed: dict[str, np.ndarray]
    future: concurrent.futures.Future


class Batcher:
    """Calls `predict` (inputs by name -> outputs by name) from one thread, on the requests
    queued meanwhile joined into one batch."""

    def __init__(self, predict: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]):
        self._predict = predict
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="predict", daemon=True)
        self._thread.start()

    def submit(self, feed: dict[str, np.ndarray]) -> concurrent.futures.Future:
        job = _Job(feed, concurrent.futures.Future())
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while (job := self._queue.get()) is not None:
            jobs, rows = [job], _rows(job.feed)
            while rows < MAX_BATCH_ROWS:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                jobs.append(more)
                rows += _rows(more.feed)
            self._answer(jobs)

    def _answer(self, jobs: list[_Job]) -> None:
        joined = _joined([job.feed for job in jobs]) if len(jobs) > 1 else jobs[0].feed
        if joined is None:  # inputs of different shapes: one at a time
            for job in jobs:
                self._answer([job])
            return
        try:
            outputs = self._predict(joined)
        except Exception as error:  # noqa: BLE001 - handed to the request that asked
            if len(jobs) > 1:  # find the request at fault: one at a time
                for job in jobs:
                    self._answer([job])
                return
            jobs[0].future.set_exception(error)
            return
        start = 0
        for job in jobs:
            end = start + _rows(job.feed)
            job.future.set_result({name: value[start:end] for name, value in outputs.items()})
            start = end


def _rows(feed: dict[str, np.ndarray]) -> int:
    return len(next(iter(feed.values())))


def _joined(feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray] | None:
    """The feeds as one batch, or None when their shapes differ beyond the batch axis."""
    joined = {}
    for name in feeds[0]:
        parts = [feed[name] for feed in feeds]
        if len({part.shape[1:] for part in parts}) > 1 or len({p.dtype for p in parts}) > 1:
            return None
        joined[name] = np.concatenate(parts)
    return joined


def make_app(
    served: Served,
    on_request: Callable[[], None] = lambda: None,
    on_stop: Callable[[], None] = lambda: None,
) -> FastAPI:
    """The FastAPI app answering for `served`: status, metadata and predict, TF Serving's way;
    `on_request` is called on each request, `on_stop` when the server shuts down."""
    from app.runtime.images import decode_image_bytes

    predictor = served.predictor
    batcher = Batcher(predictor.predict_all)
    limit = int(os.environ.get(MAX_BYTES_ENV, MAX_BYTES))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        on_stop()
        batcher.close()

    app = FastAPI(title=f"LayerFlow: {served.name}", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)  # fmt: skip

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def unknown(name: str) -> JSONResponse | None:
        on_request()
        if name != served.name:
            return error(404, f"Servable not found for request: Latest({name}); this server "
                              f"serves {served.name}")  # fmt: skip
        return None

    @app.get("/v1/models/{name}")
    async def model_status(name: str):
        return unknown(name) or protocol.status()

    @app.get("/v1/models/{name}/metadata")
    async def model_metadata(name: str):
        return unknown(name) or protocol.metadata(
            served.name, predictor.inputs, predictor.outputs, served.extra
        )

    async def body_of(name: str, request: Request) -> Any:
        """The request's JSON body, or the JSONResponse that refuses it (an unknown model, a
        body over the limit or not JSON)."""
        if (refused := unknown(name)) is not None:
            return refused
        body = bytearray()
        declared = request.headers.get("content-length", "0")
        if declared.isdigit() and int(declared) > limit:
            return error(413, f"the request body ({int(declared):,} bytes) is over the limit of "
                              f"{limit:,} bytes ({MAX_BYTES_ENV})")  # fmt: skip
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return error(413, f"the request body is over the limit of {limit:,} bytes "
                                  f"({MAX_BYTES_ENV})")  # fmt: skip
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            return error(400, f"the body is not JSON: {err}")

    async def feed_of(parsed: Any, specs: list[dict[str, Any]]) -> Any:
        """A predict body's inputs by name and whether it was columnar, or a 400 response."""
        try:  # off the event loop: decoding images takes a while
            return await asyncio.to_thread(protocol.parse_request, parsed, specs,
                                           decode_image_bytes)  # fmt: skip
        except protocol.RequestError as err:
            return error(400, str(err))

    def refused(err: Exception) -> JSONResponse:
        reason = (str(err) or type(err).__name__).splitlines()[0]
        return error(400, f"the model cannot predict these inputs: {reason}")

    async def predict(name: str, request: Request):
        if isinstance(parsed := await body_of(name, request), JSONResponse):
            return parsed
        if isinstance(found := await feed_of(parsed, predictor.inputs), JSONResponse):
            return found
        feed, columnar = found
        try:
            outputs = await asyncio.wrap_future(batcher.submit(feed))
        except Exception as err:  # noqa: BLE001 - the model refused these inputs
            return refused(err)
        return protocol.response(outputs, predictor.outputs, columnar)

    def not_autoencoder(verb: str) -> JSONResponse:
        return error(400, f"{served.name} is not an autoencoder run; only those answer :{verb}")

    async def reconstruct(name: str, request: Request):
        if isinstance(parsed := await body_of(name, request), JSONResponse):
            return parsed
        if (parts := served.autoencoder) is None:
            return not_autoencoder("reconstruct")
        if isinstance(found := await feed_of(parsed, parts.explain.inputs), JSONResponse):
            return found
        try:
            outputs = await asyncio.to_thread(parts.explain.predict_all, found[0])
        except Exception as err:  # noqa: BLE001 - the model refused these inputs
            return refused(err)
        errors = reconstruction_errors(outputs["reconstruction"], outputs["input"])
        return protocol.reconstruction(outputs, errors, parts.threshold)

    async def decode(name: str, request: Request):
        if isinstance(parsed := await body_of(name, request), JSONResponse):
            return parsed
        if (parts := served.autoencoder) is None:
            return not_autoencoder("decode")
        if parts.decoder is None:
            return error(400, f"{served.name} has no bottleneck to decode from (a skip "
                              "connection goes around every node)")  # fmt: skip
        try:
            codes = protocol.parse_codes(parsed, parts.decoder.inputs[0])
            reconstructions = await asyncio.to_thread(parts.decoder.predict, codes)
        except protocol.RequestError as err:
            return error(400, str(err))
        return {"reconstructions": json_ready(reconstructions)}

    app.add_api_route("/v1/models/{name}:predict", predict, methods=["POST"])
    app.add_api_route("/v1/models/{name}/versions/1:predict", predict, methods=["POST"])
    app.add_api_route("/v1/models/{name}:reconstruct", reconstruct, methods=["POST"])
    app.add_api_route("/v1/models/{name}:decode", decode, methods=["POST"])
    return app


def serve(
    target: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 0,
    idle: float | None = None,
    announce: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Serve the model of a run or export folder until interrupted, `idle` seconds without a
    request, or `stop` is set; port 0 takes a free one. `announce` gets the model's URL once it
    answers."""
    import uvicorn

    if (other := running(target)) is not None:  # one server per folder: its record says where
        raise ValueError(f"{Path(target).name} is already served at {other['url']} (pid "
                         f"{other['pid']}); ask that server, or stop it first")  # fmt: skip
    served = load_served(target)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{port}/v1/models/{served.name}"
    record = served.folder / RECORD
    last = [time.monotonic()]
    app = make_app(
        served,
        on_request=lambda: last.__setitem__(0, time.monotonic()),
        on_stop=lambda: _forget(record),  # here: uvicorn re-raises SIGTERM once it has stopped
    )
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=5)
    )

    async def watch() -> None:
        while not server.started:
            await asyncio.sleep(0.05)
        me = psutil.Process()
        atomic_write_text(record, _json({"url": url, "host": host, "port": port, "pid": me.pid,
                                         "pid_started": me.create_time(), "name": served.name,
                                         "started": time.time(), "idle": idle}))  # fmt: skip
        announce(url)
        while not server.should_exit:
            await asyncio.sleep(min(0.2, idle or 0.2))
            idle_for = time.monotonic() - last[0]
            if (idle and idle_for > idle) or (stop is not None and stop.is_set()):
                server.should_exit = True

    async def main() -> None:
        watcher = asyncio.ensure_future(watch())
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()
            _forget(record)

    asyncio.run(main())


def _forget(record: Path) -> None:
    """Remove serving.json if it is still this process's."""
    found = read_record(record.parent)
    if found is not None and found.get("pid") == os.getpid():
        record.unlink(missing_ok=True)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"
