"""The LLM providers: Ollama (local or on the user's network) and Gemini.

Each turns a Prompt into the model's reply text, or raises ProviderError
saying why and whether the failure is transient (429, 5xx, connection) and so
worth retrying. Retries, fallback and deadlines are the caller's job.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import ollama
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from v2md.config import GeminiConfig, OllamaConfig
from v2md.llm.prompts import Prompt

try:  # google-genai 3 talks through httpx2, a fork whose errors are not httpx's
    import httpx2

    _TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError)
except ImportError:
    _TRANSPORT_ERRORS = (httpx.TransportError,)
# Ollama's client lets the socket's own errors through as well.
_OLLAMA_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (ConnectionError, *_TRANSPORT_ERRORS)

_REASON_CHARS = 200  # error bodies can be long; the reason should fit a notification


class ProviderError(Exception):
    """One provider failed; ``transient`` failures may succeed when retried."""

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        reason = " ".join(reason.split())
        if len(reason) > _REASON_CHARS:
            reason = reason[:_REASON_CHARS] + "…"
        super().__init__(reason)
        self.transient = transient


class Provider(Protocol):
    label: str  # names the provider in logs and errors; never holds a secret
    missing: str | None  # why it cannot be tried (no API key, …), else None

    async def complete(self, prompt: Prompt, max_chars: int) -> str: ...

    async def close(self) -> None: ...


def _public_url(url: str) -> str:
    """The URL without user:password@, for logs and messages (a proxy in front of Ollama
    may take basic auth in the URL)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500


def _too_long(max_chars: int) -> ProviderError:
    return ProviderError(f"reply longer than the limit of {max_chars} characters")


def _unreachable(where: str, exc: Exception) -> ProviderError:
    return ProviderError(f"cannot reach {where}: {exc or type(exc).__name__}", transient=True)


def _unreadable(exc: Exception) -> ProviderError:
    return ProviderError(f"malformed reply: {exc}")


class OllamaProvider:
    """Ollama's ``/api/chat``, streamed so an endless reply is cut off at the limit."""

    def __init__(self, cfg: OllamaConfig) -> None:
        self._cfg = cfg
        self._where = _public_url(cfg.host)
        self.label = f"ollama ({cfg.model} at {self._where})"
        self.missing: str | None = None
        self._client: ollama.AsyncClient | None = None
        try:
            self._client = ollama.AsyncClient(host=cfg.host)
        except ValueError as exc:  # the client parses the URL up front: "port out of range"
            self.missing = f"[llm.ollama] host is not a usable URL: {exc}"

    async def complete(self, prompt: Prompt, max_chars: int) -> str:
        if self._client is None:
            raise ProviderError(self.missing or "not configured")
        try:
            stream = await self._client.chat(
                model=self._cfg.model,
                messages=[
                    {"role": "system", "content": prompt.system},
                    {"role": "user", "content": prompt.user},
                ],
                stream=True,
                options={"temperature": self._cfg.temperature},
                keep_alive=self._cfg.keep_alive,
            )
            return await self._collect(stream, max_chars)
        except ollama.ResponseError as exc:
            status = exc.status_code
            raise ProviderError(
                f"HTTP {status}: {exc.error}" if status > 0 else exc.error,
                transient=_is_transient_status(status),
            ) from exc
        except _OLLAMA_TRANSPORT_ERRORS as exc:
            raise _unreachable(self._where, exc) from exc
        except ValueError as exc:  # JSON that does not parse, or does not fit the schema
            raise _unreadable(exc) from exc

    @staticmethod
    async def _collect(stream: AsyncIterator[ollama.ChatResponse], max_chars: int) -> str:
        parts: list[str] = []
        size = 0
        done_reason = None
        # aclosing: leaving early (size limit, timeout) closes the HTTP stream at once.
        async with contextlib.aclosing(stream):  # type: ignore[type-var]  # an async generator
            async for chunk in stream:
                piece = chunk.message.content or ""
                size += len(piece)
                if size > max_chars:
                    raise _too_long(max_chars)
                parts.append(piece)
                if chunk.done:
                    done_reason = chunk.done_reason
        if done_reason == "length":
            raise ProviderError("reply cut off at the model's output limit")
        return "".join(parts)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]  # genai leaves it untyped


class GeminiProvider:
    """Gemini's ``generateContent`` through google-genai, with the SDK's own retries off."""

    def __init__(self, cfg: GeminiConfig) -> None:
        self._cfg = cfg
        self.label = f"gemini ({cfg.model})"
        key = cfg.api_key.get_secret_value() if cfg.api_key else ""
        self.missing = None if key else "no API key: set GEMINI_API_KEY"
        self._client = (
            genai.Client(
                vertexai=False,
                api_key=key,
                http_options=genai_types.HttpOptions(
                    base_url=cfg.base_url,
                    retry_options=genai_types.HttpRetryOptions(attempts=1),
                ),
            )
            if key
            else None
        )

    async def complete(self, prompt: Prompt, max_chars: int) -> str:
        if self._client is None:
            raise ProviderError(self.missing or "not configured")
        try:
            response = await self._client.aio.models.generate_content(
                model=self._cfg.model,
                contents=prompt.user,
                config=genai_types.GenerateContentConfig(
                    system_instruction=prompt.system,
                    temperature=self._cfg.temperature,
                    max_output_tokens=self._cfg.max_output_tokens,
                ),
            )
        except genai_errors.APIError as exc:
            raise ProviderError(
                f"HTTP {exc.code} {exc.status or ''}: {exc.message or ''}",
                transient=_is_transient_status(exc.code),
            ) from exc
        except _TRANSPORT_ERRORS as exc:
            raise _unreachable(_public_url(self._cfg.base_url or "Gemini"), exc) from exc
        except ValueError as exc:
            raise _unreadable(exc) from exc
        return self._text_of(response, max_chars)

    @staticmethod
    def _text_of(response: genai_types.GenerateContentResponse, max_chars: int) -> str:
        candidate = response.candidates[0] if response.candidates else None
        finish = candidate.finish_reason if candidate else None
        if finish == genai_types.FinishReason.MAX_TOKENS:
            raise ProviderError("reply cut off at max_output_tokens")
        text = response.text
        if not text:
            blocked = response.prompt_feedback and response.prompt_feedback.block_reason
            raise ProviderError(f"no text in the reply (finish reason {finish or blocked})")
        if len(text) > max_chars:
            raise _too_long(max_chars)
        return text

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
