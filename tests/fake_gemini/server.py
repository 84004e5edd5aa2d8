"""The fake Gemini HTTP server: `FakeGemini` and its request handler.

Each generate call consumes one scripted fault from a FIFO queue (``enqueue``
/ ``script``); an empty queue means the default success answer. The server
counts calls in flight and records when each started, so tests can assert on
the concurrency gate of the code under test.

Control endpoints share the port: ``GET /_fake/stats``, ``POST /_fake/reset``,
``POST /_fake/config`` ``{latency, image_kb, image_size, api_key}``,
``POST /_fake/script`` ``["rate_limited", {"fault": "error", "code": 500,
"status": "INTERNAL", "message": "boom"}, ...]`` (replaces the queue) and
``POST /_fake/enqueue`` (one fault, appended). The stats' ``start_times`` are
``time.monotonic()`` of the server process; on Linux that clock is
system-wide, so a parent process can compare them.
"""

from __future__ import annotations

import base64
import collections
import copy
import json
import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from tests.fake_gemini.faults import (
    DEFAULT_IMAGE_DATA,
    Fault,
    fault_from_spec,
    key_invalid,
    ok,
)
from tests.fake_gemini.pictures import render_png
from tests.fake_gemini.state import RecordedCall, State

_GENERATE_PATH = re.compile(
    r"^/(?P<api_version>[^/]+)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$"
)


class FakeGemini:
    """The fake server. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        image_size: tuple[int, int] = (64, 64),
        image_kb: int | None = None,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._faults: collections.deque[Fault] = collections.deque()
        self._state = State(
            latency=latency,
            image_size=tuple(image_size),
            image_kb=image_kb,
            api_key=api_key,
        )
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._stopping.clear()
        self._server = _Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        # A short poll interval keeps stop(), and so each test's teardown, fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-gemini", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in latency or hang()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Block the calling thread until interrupted (the CLI)."""
        if self._server is None:
            self.start()
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=1)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------ knobs

    @property
    def latency(self) -> float:
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._state.latency = float(seconds)

    @property
    def image_size(self) -> tuple[int, int]:
        return self._state.image_size

    @image_size.setter
    def image_size(self, size: tuple[int, int]) -> None:
        self._state.image_size = (int(size[0]), int(size[1]))

    @property
    def image_kb(self) -> int | None:
        return self._state.image_kb

    @image_kb.setter
    def image_kb(self, kilobytes: int | None) -> None:
        self._state.image_kb = int(kilobytes) if kilobytes else None

    @property
    def api_key(self) -> str | None:
        return self._state.api_key

    @api_key.setter
    def api_key(self, key: str | None) -> None:
        self._state.api_key = key

    # ------------------------------------------------------------ script

    def enqueue(self, fault: str | dict | Fault) -> None:
        with self._lock:
            self._faults.append(fault_from_spec(fault))

    def script(self, faults: list[str | dict | Fault]) -> None:
        """Replace the queue: one item per coming call, then default answers."""
        parsed = [fault_from_spec(spec) for spec in faults]
        with self._lock:
            self._faults.clear()
            self._faults.extend(parsed)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Forget calls, counters and scripted faults; keep the knobs."""
        with self._lock:
            self._faults.clear()
            self._state.requests = []
            self._state.start_times = []
            self._state.proxy_tunnels = []
            self._state.max_in_flight = self._state.in_flight

    # ------------------------------------------------------------ observations

    @property
    def requests(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._state.requests)

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self._state.requests)

    @property
    def start_times(self) -> list[float]:
        """time.monotonic() at which each generate call arrived, in order."""
        with self._lock:
            return list(self._state.start_times)

    @property
    def proxy_tunnels(self) -> list[str]:
        """``host:port`` of each CONNECT received (see State.proxy_tunnels)."""
        with self._lock:
            return list(self._state.proxy_tunnels)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._state.max_in_flight

    def stats(self) -> dict:
        with self._lock:
            return {
                "max_in_flight": self._state.max_in_flight,
                "in_flight": self._state.in_flight,
                "calls": len(self._state.requests),
                "start_times": list(self._state.start_times),
                "latency": self._state.latency,
                "image_kb": self._state.image_kb,
                "pending_faults": len(self._faults),
            }

    def configure(self, settings: dict) -> None:
        if "latency" in settings:
            self.latency = settings["latency"]
        if "image_kb" in settings:
            self.image_kb = settings["image_kb"]
        if "image_size" in settings:
            self.image_size = tuple(settings["image_size"])
        if "api_key" in settings:
            self.api_key = settings["api_key"]

    # ------------------------------------------------------------ per call (handler side)

    def _begin_call(self, call: RecordedCall) -> Fault:
        with self._lock:
            state = self._state
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            state.start_times.append(call.started)
            state.requests.append(call)
            fault = self._faults.popleft() if self._faults else ok()
            if state.api_key is not None and call.headers.get("x-goog-api-key") != state.api_key:
                fault = key_invalid()
            call.fault = fault.name
            return fault

    def _end_call(self, call: RecordedCall, status: int | None) -> None:
        with self._lock:
            self._state.in_flight -= 1
            call.ended = time.monotonic()
            call.status = status

    def _default_image_base64(self, request_body: Any) -> str:
        state = self._state
        seed = _seed_of(request_body)
        width, height = state.image_size
        return base64.b64encode(render_png(width, height, seed, state.image_kb)).decode()


def _seed_of(request_body: Any) -> int:
    try:
        return int(request_body["generationConfig"]["seed"])
    except (KeyError, TypeError, ValueError):
        return 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # stop() must not wait for handlers still sleeping in hang().
    block_on_close = False
    allow_reuse_address = True
    # Many benchmark clients connect at once.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    owner: FakeGemini
    protocol_version = "HTTP/1.1"  # keep-alive, like Google's front end
    # http.server sends headers and body in two writes; with Nagle on, a
    # small body waits for the delayed ACK (~40 ms), which no real front end
    # adds. TCP_NODELAY, as Google's front end and waitress have.
    disable_nagle_algorithm = True
    server_version = "ESF"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    # ------------------------------------------------------------ routing

    def do_CONNECT(self) -> None:
        with self.owner._lock:
            self.owner._state.proxy_tunnels.append(self.path)
        self.close_connection = True
        self._send_bytes(403, b"tunnelling not supported by the fake", "text/plain")

    def _target(self) -> tuple[str, bool]:
        """The request path, and whether it came through a forward proxy
        (which sends the absolute URL: ``POST http://host/v1beta/...``)."""
        target = self.path
        proxied = target.startswith(("http://", "https://"))
        if proxied:
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        return target.split("?")[0], proxied

    def do_GET(self) -> None:
        if self._target()[0] == "/_fake/stats":
            self._send_json(200, self.owner.stats())
        else:
            self._send_not_found()

    def do_POST(self) -> None:
        raw_body = self._read_body()
        path, proxied = self._target()
        if path.startswith("/_fake/"):
            self._control(path, raw_body)
            return
        match = _GENERATE_PATH.match(path)
        if not match or match["method"] != "generateContent":
            self._send_not_found()
            return
        self._generate(match["api_version"], match["model"], raw_body, proxied)

    # ------------------------------------------------------------ control

    def _control(self, path: str, raw_body: bytes) -> None:
        try:
            payload = json.loads(raw_body) if raw_body else None
            if path == "/_fake/reset":
                self.owner.reset()
            elif path == "/_fake/config":
                self.owner.configure(payload or {})
            elif path == "/_fake/script":
                self.owner.script(payload or [])
            elif path == "/_fake/enqueue":
                self.owner.enqueue(payload)
            else:
                self._send_not_found()
                return
        except (ValueError, KeyError, TypeError) as exc:
            self._send_json(400, {"error": f"{type(exc).__name__}: {exc}"})
            return
        self._send_json(200, self.owner.stats())

    # ------------------------------------------------------------ generateContent

    def _generate(self, api_version: str, model: str, raw_body: bytes, proxied: bool) -> None:
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = {"unparseable": raw_body[:200].decode("utf-8", "replace")}
        call = RecordedCall(
            method="POST",
            path=self.path,
            model=model,
            api_version=api_version,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            started=time.monotonic(),
            proxied=proxied,
        )
        fault = self.owner._begin_call(call)
        status: int | None = None
        try:
            self.owner._stopping.wait(self.owner.latency + fault.delay_s)
            if fault.reset:
                self._reset_connection()
                return
            if fault.raw is not None:
                status = fault.status
                self._send_bytes(status, fault.raw, headers=fault.headers)
                return
            try:
                answer = self._materialize(fault.body or {}, model, api_version, body)
                status = fault.status
            # A bug in the fake must show up as an answer, not a dropped connection.
            except Exception as exc:
                status = 500
                answer = {
                    "error": {
                        "code": 500,
                        "message": f"fake_gemini failed: {exc!r}",
                        "status": "INTERNAL",
                    }
                }
            self._send_json(status, answer, headers=fault.headers)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout fired during hang()).
            self.close_connection = True
        finally:
            self.owner._end_call(call, status)

    def _materialize(self, template: dict, model: str, api_version: str, request_body: Any) -> dict:
        answer = copy.deepcopy(template)
        if "error" in answer:
            error_body = answer["error"]
            error_body["message"] = (
                error_body["message"]
                .replace("{model}", model)
                .replace("{api_version}", api_version)
            )
            for detail in error_body.get("details", []):
                for violation in detail.get("violations", []):
                    dimensions = violation.get("quotaDimensions", {})
                    if dimensions.get("model") == "{model}":
                        dimensions["model"] = model
            return answer
        for candidate in answer.get("candidates", []):
            for part in (candidate.get("content") or {}).get("parts", []):
                inline = part.get("inlineData")
                if inline and inline.get("data") == DEFAULT_IMAGE_DATA:
                    inline["data"] = self.owner._default_image_base64(request_body)
        answer.setdefault("modelVersion", model)
        answer.setdefault("responseId", f"fake-{time.monotonic_ns():x}")
        return answer

    # ------------------------------------------------------------ I/O

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), headers=headers)

    def _send_bytes(
        self,
        status: int,
        data: bytes,
        content_type: str = "application/json; charset=UTF-8",
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_not_found(self) -> None:
        self._send_json(
            404,
            {
                "error": {
                    "code": 404,
                    "message": f"Not found: {self.path}",
                    "status": "NOT_FOUND",
                }
            },
        )

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
