"""Prompts: instruction files, and the user's text fenced off as data.

The instructions (``refine.txt``, ``translate.txt``) are files the user may
override: ``[llm] prompts_dir`` if set, else ``$XDG_CONFIG_HOME/v2m/prompts/``;
a file missing there comes from the package. They are read on every request
so an edited prompt applies without restarting the daemon.

The dictated text goes in a separate message inside ``<dictation>`` tags.
The ``<`` of anything tag-like (``</dictation>``, ``< DICTATION x>``) in the
text is escaped, so dictated words cannot close the block and smuggle in
instructions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from v2md.config import xdg_dir
from v2md.errors import LLMError

PACKAGE_PROMPTS = Path(__file__).resolve().parent.parent / "data" / "prompts"
TAG = "dictation"
LANGUAGE_PLACEHOLDER = "{language}"

# The start of anything a model could read as our tag, whatever its case, spaces,
# attributes or missing ">"; escaping its "<" leaves nothing in the text to close the block.
_TAG_START = re.compile(rf"<(?=\s*/?\s*{TAG}\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Prompt:
    """What a provider sends: instructions (system) and the fenced text (user)."""

    system: str
    user: str


def user_prompts_dir(configured: Path | None) -> Path:
    return configured if configured is not None else xdg_dir("config") / "v2m" / "prompts"


def load_instructions(name: str, user_dir: Path, placeholder: str | None = None) -> str:
    """The instruction file ``<name>.txt``, the user's copy first, else the package's.

    ``placeholder``, when given, must occur in the file: it is where a value goes.
    """
    for directory in (user_dir, PACKAGE_PROMPTS):
        path = directory / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise LLMError(f"cannot read prompt file {path}: {exc}") from exc
        if not text:
            raise LLMError(f"prompt file {path} is empty")
        if placeholder and placeholder not in text:
            raise LLMError(f"prompt file {path} must contain {placeholder}")
        return text
    raise LLMError(f"no prompt file {name}.txt in {user_dir} or {PACKAGE_PROMPTS}")


def fence(text: str) -> str:
    """The text inside the data block, with anything tag-like escaped."""
    escaped = _TAG_START.sub("&lt;", text)
    return f"<{TAG}>\n{escaped}\n</{TAG}>"


def refine_prompt(text: str, user_dir: Path, glossary: Sequence[str] = ()) -> Prompt:
    """Refine's prompt; the user's vocabulary, if any, follows the instructions as the
    spellings to keep."""
    instructions = load_instructions("refine", user_dir)
    if glossary:
        words = "\n".join(f"- {word}" for word in glossary)
        instructions += f"\n\nGlossary: spell these names and terms exactly so:\n{words}"
    return Prompt(instructions, fence(text))


def translate_prompt(text: str, language: str, user_dir: Path) -> Prompt:
    instructions = load_instructions("translate", user_dir, LANGUAGE_PLACEHOLDER)
    return Prompt(instructions.replace(LANGUAGE_PLACEHOLDER, language), fence(text))


def clean_reply(reply: str) -> str:
    """The model's answer without surrounding space or an echoed data block."""
    text = reply.strip()
    opening, closing = f"<{TAG}>", f"</{TAG}>"
    if text.startswith(opening) and text.endswith(closing):
        text = text[len(opening) : -len(closing)].strip()
    return text
