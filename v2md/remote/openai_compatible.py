"""A server speaking the OpenAI transcription API as the maker of final text (speaches,
vLLM, LocalAI, api.openai.com).

``POST {url}/audio/transcriptions`` with the speech as a 16 kHz WAV in a multipart
upload and ``response_format=verbose_json``; ``GET {url}/models`` is the describe
request. A 429 is retried, at most MAX_RETRIES times, after the wait the server
asks for (``Retry-After``) when that still fits before the deadline; every other
failure is a ModelError naming the server and what to change.
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import time
import wave
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from v2md.audio.format import SAMPLE_RATE
from v2md.config import WhisperConfig
from v2md.errors import ModelError, brief
from v2md.remote.worker import pcm16, shown_url

MAX_RETRIES = 2
RETRY_BACKOFF_S = 0.5  # the first wait when a 429 does not say how long; doubles after
SHOWN_BODY = 200  # characters of an error answer a message repeats


class OpenAIEngine:
    """Final text from an OpenAI-compatible server at ``[whisper] url``."""

    def __init__(
        self, cfg: WhisperConfig, bias: Callable[[str], str] = lambda _language: ""
    ) -> None:
        self.name = f"OpenAI-compatible server {shown_url(cfg.url)}"
        self._model = cfg.remote_model
        self._prompt = cfg.initial_prompt
        self._bias = bias  # the user's words and the command words, as for the local model
        key = cfg.api_key.get_secret_value() if cfg.api_key is not None else ""
        # No timeout of its own: the caller's deadline bounds every request.
        self._client = httpx.AsyncClient(
            base_url=cfg.url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=None,
        )

    async def describe(self) -> str:
        response = await self._send("GET", "models")
        if response.status_code == 404:
            return self._model  # a server without a model list: it answered, that will do
        self._check(response)
        try:
            served = [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ModelError(f"{self.name}: GET models did not answer a model list") from None
        if served and self._model not in served:
            raise ModelError(
                f"{self.name} has no model {self._model!r}, only "
                f"{brief(', '.join(served), SHOWN_BODY)}: set [whisper] remote_model"
            )
        return self._model

    async def transcribe(self, audio: np.ndarray, language: str | None, deadline: float) -> str:
        fields = {"model": self._model, "response_format": "verbose_json", "temperature": "0"}
        if language is not None:
            fields["language"] = language
        prompt = " ".join(p for p in (self._prompt, self._bias(language or "auto")) if p)
        if prompt:
            fields["prompt"] = prompt
        files = {"file": ("speech.wav", _wav(audio), "audio/wav")}
        for attempt in range(MAX_RETRIES + 1):
            response = await self._send("POST", "audio/transcriptions", data=fields, files=files)
            if response.status_code != 429 or attempt == MAX_RETRIES:
                break
            wait = _retry_after(response, RETRY_BACKOFF_S * 2**attempt)
            if asyncio.get_running_loop().time() + wait >= deadline:
                raise ModelError(
                    f"{self.name} is busy (429 Too Many Requests) and asks to wait {wait:.1f} s, "
                    "past [whisper] remote_timeout_s"
                )
            await asyncio.sleep(wait)
        self._check(response)
        try:
            text = response.json()["text"]
        except (ValueError, KeyError, TypeError):
            text = None
        if not isinstance(text, str):
            raise ModelError(
                f"{self.name} answered without a transcript: {brief(response.text, SHOWN_BODY)}"
            )
        return text

    async def close(self) -> None:
        await self._client.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ModelError(f"{self.name}: {type(exc).__name__}: {exc}") from None

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        what = f"{self.name} answered {status} {response.reason_phrase}"
        if status in (401, 403):
            raise ModelError(
                f"{what}: it refused the API key; set [whisper] api_key or OPENAI_API_KEY"
            )
        if status == 429:
            raise ModelError(f"{what} after {MAX_RETRIES} retries")
        raise ModelError(f"{what}: {brief(response.text.strip(), SHOWN_BODY)}")


def _wav(audio: np.ndarray) -> bytes:
    """16 kHz mono 16-bit WAV: the format every such server takes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm16(audio))
    return out.getvalue()


def _retry_after(response: httpx.Response, default: float) -> float:
    """The wait a 429 asks for: Retry-After in seconds or as an HTTP date; else ``default``."""
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())
