"""Refine and Translate: validation, retries, deadline and fallback over the providers.

Providers are tried in order (``[llm] provider``, then ``fallback``). Each gets
``timeout_s`` for its attempt, retries included; transient failures (429, 5xx,
connection) are retried with doubling backoff up to ``max_retries`` times,
anything else moves straight on to the next provider. Only when every one has
failed does the caller get an error, naming each provider and why.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

from v2md.config import LLMConfig, default_config_path, secrets_path
from v2md.errors import InvalidArgumentError, LLMError, OperationTimeoutError
from v2md.languages import language_name
from v2md.llm.prompts import Prompt, clean_reply, refine_prompt, translate_prompt, user_prompts_dir
from v2md.llm.providers import GeminiProvider, OllamaProvider, Provider, ProviderError

log = logging.getLogger(__name__)


def _not_configured(config_file: Path) -> str:
    """What to set, and where, when Refine or Translate finds no provider."""
    return (
        f"no LLM provider is configured: set provider under [llm] in {config_file} "
        'to "ollama" (a local or LAN Ollama server, [llm.ollama] host and model) or "gemini" '
        "(Google Gemini, needs GEMINI_API_KEY in the environment or in "
        f"{secrets_path(config_file)})"
    )


class _TimedOut(Exception):
    """A provider's attempt outlived ``timeout_s``."""


def _build_providers(cfg: LLMConfig) -> list[Provider]:
    if cfg.provider == "none":
        if cfg.fallback:
            log.warning("[llm] provider is none, so fallback %s is not used", cfg.fallback)
        return []
    names = list(dict.fromkeys([cfg.provider, *cfg.fallback]))  # ordered, without repeats
    factories: dict[str, Callable[[], Provider]] = {
        "ollama": lambda: OllamaProvider(cfg.ollama),
        "gemini": lambda: GeminiProvider(cfg.gemini),
    }
    providers = [factories[name]() for name in names]
    for provider in providers:
        if provider.missing:
            log.warning("LLM provider %s cannot be used: %s", provider.label, provider.missing)
    return providers


class LLMService:
    """Refine or translate text with the configured providers; raises the named errors.

    ``config_file`` is the file ``cfg`` came from, named in the advice when no provider is
    configured."""

    def __init__(
        self,
        cfg: LLMConfig,
        config_file: Path | None = None,
        glossary: Callable[[], list[str]] | None = None,
    ) -> None:
        self._cfg = cfg
        # The user's vocabulary, asked at each Refine: a word added applies to the next one.
        self._glossary = glossary or list
        self._config_file = config_file or default_config_path()
        self._providers = _build_providers(cfg)

    @property
    def configured(self) -> bool:
        """True when at least one provider can be tried (Gemini needs its API key)."""
        return any(p.missing is None for p in self._providers)

    async def refine(self, text: str) -> str:
        self._check_input(text)
        return await self._run(
            "refine",
            text,
            lambda: refine_prompt(text, self._prompts_dir, self._glossary()),
        )

    async def translate(self, text: str, target_language: str) -> str:
        self._check_input(text)
        language = language_name(target_language)
        return await self._run(
            f"translate to {language}",
            text,
            lambda: translate_prompt(text, language, self._prompts_dir),
        )

    async def close(self) -> None:
        for provider in self._providers:
            await provider.close()

    @property
    def _prompts_dir(self) -> Path:
        return user_prompts_dir(self._cfg.prompts_dir)

    def _check_input(self, text: str) -> None:
        if not text.strip():
            raise InvalidArgumentError("the text is empty")
        if len(text) > self._cfg.max_input_chars:
            raise InvalidArgumentError(
                f"the text has {len(text)} characters, more than [llm] max_input_chars = "
                f"{self._cfg.max_input_chars}"
            )

    async def _run(self, task: str, text: str, build: Callable[[], Prompt]) -> str:
        if not self._providers:
            raise LLMError(_not_configured(self._config_file))
        prompt = build()
        failures: list[str] = []
        timed_out = tried = 0
        for provider in self._providers:
            if provider.missing:
                failures.append(f"{provider.label}: {provider.missing}")
                continue
            tried += 1
            started = time.monotonic()
            try:
                reply = await self._attempt(provider, prompt)
            except (ProviderError, _TimedOut) as exc:
                timed_out += isinstance(exc, _TimedOut)
                failures.append(f"{provider.label}: {exc}")
                log.warning("%s: %s failed: %s", task, provider.label, exc)
                continue
            log.info(
                "%s: %d chars in, %d out via %s in %.2f s",
                task,
                len(text),
                len(reply),
                provider.label,
                time.monotonic() - started,
            )
            return reply
        summary = "; ".join(failures)
        if tried and timed_out == tried:
            raise OperationTimeoutError(f"the LLM did not answer in time: {summary}")
        raise LLMError(f"every LLM provider failed: {summary}")

    async def _attempt(self, provider: Provider, prompt: Prompt) -> str:
        """One provider within its deadline, retrying transient failures."""
        deadline = asyncio.timeout(self._cfg.timeout_s)
        try:
            async with deadline:
                retry = 0
                while True:
                    try:
                        return await self._ask(provider, prompt)
                    except ProviderError as exc:
                        if not exc.transient or retry == self._cfg.max_retries:
                            raise
                        retry += 1
                        delay = self._backoff(retry)
                        log.info(
                            "%s: %s; retry %d of %d in %.2f s",
                            provider.label,
                            exc,
                            retry,
                            self._cfg.max_retries,
                            delay,
                        )
                        await asyncio.sleep(delay)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise _TimedOut(f"no answer within timeout_s = {self._cfg.timeout_s:g} s") from None

    def _backoff(self, retry: int) -> float:
        """Seconds before retry number ``retry`` (1, 2, …): doubling, jittered so that
        several clients do not retry in lockstep."""
        return float(self._cfg.retry_backoff_s * 2 ** (retry - 1) * random.uniform(0.5, 1))

    async def _ask(self, provider: Provider, prompt: Prompt) -> str:
        try:
            reply = clean_reply(await provider.complete(prompt, self._cfg.max_output_chars))
        except ProviderError:
            raise
        except Exception as exc:
            # A client library failing in a way not foreseen must still end in a named
            # error (and the next provider), never in an unnamed D-Bus failure.
            log.exception("%s failed unexpectedly", provider.label)
            raise ProviderError(f"unexpected {type(exc).__name__}: {exc}") from exc
        if not reply:
            raise ProviderError("empty reply")
        return reply
