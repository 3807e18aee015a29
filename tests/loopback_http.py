"""The scaffolding of the project's stand-in HTTP servers: a server on 127.0.0.1 in a
thread of its own, and a script of what the next requests get.

``server.script("429", "ok")`` answers the first request with the ``429`` step and
every later one with ``ok``: the last step repeats. Subclasses give the handler and
say what each step sends.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """A scripted HTTP server for one test; a context manager that starts and stops it."""

    base_path = ""  # what the url ends with: the API's root on the server

    def __init__(self) -> None:
        self._script = ["ok"]
        self._lock = threading.Lock()
        self._closing = threading.Event()  # set on close: releases handlers that wait
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        # A short poll interval makes close() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{self.base_path}"

    def script(self, *steps: str) -> None:
        with self._lock:
            self._script = list(steps)

    def next_step(self) -> str:
        with self._lock:
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def wait_unless_closed(self, seconds: float) -> bool:
        """Wait ``seconds`` (a slow answer); True if the server closed meanwhile."""
        return self._closing.wait(seconds)

    def start(self) -> Self:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError
