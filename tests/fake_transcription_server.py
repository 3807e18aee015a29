"""A loopback stand-in for a server speaking the OpenAI transcription API.

``POST /v1/audio/transcriptions`` takes the multipart upload the real API takes and
answers ``verbose_json``; ``GET /v1/models`` lists ``models``. What the next
transcriptions get is scripted, the last step repeating: ``ok`` (the reply, as
verbose_json), ``401``, ``429`` (with ``Retry-After: retry_after``), ``500``, and
``slow`` (the reply after ``slow_s``). Each upload is recorded in ``uploads``.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import time
import wave
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

import numpy as np
from loopback_http import LoopbackServer


@dataclass
class Upload:
    """One transcription request as the server saw it."""

    at: float  # time.monotonic() on arrival
    authorization: str
    fields: dict[str, str]
    filename: str
    content_type: str
    audio: np.ndarray  # the uploaded WAV's samples, float32
    rate: int
    channels: int


class TranscriptionServer(LoopbackServer):
    base_path = "/v1"

    def __init__(self, reply: str = " Text from the big model.") -> None:
        self.reply = reply
        self.models = ["whisper-large", "whisper-small"]
        self.retry_after = "1"
        self.slow_s = 30.0
        self.uploads: list[Upload] = []
        super().__init__()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None: ...

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                self._send(200, {"object": "list", "data": [{"id": m} for m in server.models]})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path != "/v1/audio/transcriptions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                server.uploads.append(self._upload(body))
                step = server.next_step()
                if step == "401":
                    self._send(401, {"error": {"message": "Incorrect API key provided"}})
                elif step == "429":
                    headers = {"Retry-After": server.retry_after}
                    self._send(429, {"error": {"message": "Rate limit reached"}}, headers)
                elif step == "500":
                    self._send(500, {"error": {"message": "CUDA out of memory"}})
                else:
                    if step == "slow":
                        server.wait_unless_closed(server.slow_s)
                    self._send(200, server._verbose_json(server.uploads[-1]))

            def _upload(self, body: bytes) -> Upload:
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
                fields: dict[str, str] = {}
                wav = b""
                filename = content_type = ""
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if name == "file":
                        wav = part.get_payload(decode=True)
                        filename = part.get_filename()
                        content_type = part.get_content_type()
                    else:
                        fields[name] = part.get_payload(decode=True).decode()
                with wave.open(io.BytesIO(wav)) as audio:
                    frames = audio.readframes(audio.getnframes())
                    rate, channels = audio.getframerate(), audio.getnchannels()
                samples = np.frombuffer(frames, "<i2").astype(np.float32) / 32768
                return Upload(
                    time.monotonic(),
                    self.headers.get("Authorization", ""),
                    fields,
                    filename,
                    content_type,
                    samples,
                    rate,
                    channels,
                )

            def _send(
                self, status: int, body: object, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _verbose_json(self, upload: Upload) -> dict[str, object]:
        """The answer the real API gives for response_format=verbose_json."""
        duration = upload.audio.size / upload.rate
        return {
            "task": "transcribe",
            "language": "english",
            "duration": duration,
            "text": self.reply,
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": duration,
                    "text": self.reply,
                    "tokens": [50364, 2264],
                    "temperature": 0.0,
                    "avg_logprob": -0.2,
                    "compression_ratio": 1.1,
                    "no_speech_prob": 0.01,
                }
            ],
        }
