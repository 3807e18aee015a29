"""Local stand-ins for Ollama and Gemini that speak their real wire formats.

Each server listens on 127.0.0.1 in a background thread, so the real ``ollama``
and ``google-genai`` clients (and a daemon in another process) can talk to it.
What the next requests get is scripted: ``server.script("429", "ok")`` answers
429 once, then succeeds for every later request (the last step repeats).

Behaviours: ``ok`` (the reply text), ``slow`` (wait ``slow_s`` first), ``429``,
``500``, ``400`` (the provider's error JSON with that status), ``malformed``
(200 with a body that is not JSON), ``shapeless`` (200 with JSON of the wrong
shape, a list), ``huge`` (a reply of ``huge_chars``),
``cut`` (the reply, marked as stopped at the model's output limit).
Every request is recorded in ``server.requests`` as (path, parsed JSON body).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback_http import LoopbackServer

BEHAVIOURS = ("ok", "slow", "429", "500", "400", "malformed", "shapeless", "huge", "cut")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}


class FakeServer(LoopbackServer):
    """Base: request log and behaviours; subclasses write the provider's responses."""

    def __init__(self, reply: str = "Fake reply.") -> None:
        self.reply = reply
        self.slow_s = 5.0
        self.huge_chars = 1_000_000
        self.chunk_chars = 8  # streaming replies arrive in pieces this long
        self.requests: list[tuple[str, Any]] = []
        super().__init__()

    def script(self, *steps: str) -> None:
        unknown = [s for s in steps if s not in BEHAVIOURS]
        if not steps or unknown:
            raise ValueError(f"script needs steps from {BEHAVIOURS}, got {steps!r}")
        super().script(*steps)

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else small writes wait on delayed ACKs (~40 ms)

            def log_message(self, *args: object) -> None:
                pass  # keep pytest output clean

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = raw
                fake.requests.append((self.path, body))
                step = fake.next_step()
                if step == "slow" and fake.wait_unless_closed(fake.slow_s):
                    return
                # The client may give up first (timeout, size limit).
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake._respond(self, step, body)

        return Handler

    def _respond(self, h: BaseHTTPRequestHandler, step: str, body: Any) -> None:
        if step in ("429", "500", "400"):
            self._send(h, int(step), json.dumps(self.error_body(int(step))).encode())
        elif step == "malformed":
            self._send(h, 200, b'{"message": {"content": "cut off')
        elif step == "shapeless":
            self._send(h, 200, b'["not", "an", "object"]')
        else:
            text = "x" * self.huge_chars if step == "huge" else self.reply
            self.answer(h, body, text, cut=step == "cut")

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, data: bytes, kind="application/json"):
        h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _pieces(self, text: str) -> Iterator[str]:
        for start in range(0, len(text), self.chunk_chars):
            yield text[start : start + self.chunk_chars]

    def error_body(self, status: int) -> Any:
        raise NotImplementedError

    def answer(self, h: BaseHTTPRequestHandler, body: Any, text: str, cut: bool) -> None:
        raise NotImplementedError


class FakeOllama(FakeServer):
    """``POST /api/chat`` and ``/api/generate``, whole or as streamed NDJSON."""

    def error_body(self, status: int) -> Any:
        return {"error": f"fake ollama error {status}"}

    def answer(self, h: BaseHTTPRequestHandler, body: Any, text: str, cut: bool) -> None:
        path = h.path.split("?")[0]
        if path not in ("/api/chat", "/api/generate"):
            self._send(h, 404, json.dumps({"error": f"unknown path {path}"}).encode())
            return
        model = body.get("model", "") if isinstance(body, dict) else ""
        reason = "length" if cut else "stop"
        if not body.get("stream", True):
            self._send(h, 200, json.dumps(self._part(path, model, text, reason)).encode())
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/x-ndjson")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        for piece in self._pieces(text):
            self._chunk(h, self._part(path, model, piece, None))
        self._chunk(h, self._part(path, model, "", reason))
        h.wfile.write(b"0\r\n\r\n")

    @staticmethod
    def _part(path: str, model: str, text: str, done_reason: str | None) -> dict[str, Any]:
        """One NDJSON line; ``done_reason`` None means more follow."""
        done = done_reason is not None
        part: dict[str, Any] = {"model": model, "created_at": "2025-01-01T00:00:00Z", "done": done}
        if path == "/api/chat":
            part["message"] = {"role": "assistant", "content": text}
        else:
            part["response"] = text
        if done:
            part |= {"done_reason": done_reason, "eval_count": 1, "total_duration": 1}
        return part

    @staticmethod
    def _chunk(h: BaseHTTPRequestHandler, part: dict[str, Any]) -> None:
        line = json.dumps(part).encode() + b"\n"
        h.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")


class FakeGemini(FakeServer):
    """``POST /v1beta/models/<model>:generateContent`` as the Gemini REST API answers it."""

    def error_body(self, status: int) -> Any:
        return {
            "error": {
                "code": status,
                "message": "fake gemini error",
                "status": STATUS_NAMES[status],
            }
        }

    def answer(self, h: BaseHTTPRequestHandler, body: Any, text: str, cut: bool) -> None:
        if not h.path.split("?")[0].endswith(":generateContent"):
            self._send(h, 404, json.dumps(self.error_body(404)).encode())
            return
        reply = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "MAX_TOKENS" if cut else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1},
            "modelVersion": "fake",
        }
        self._send(h, 200, json.dumps(reply).encode())
