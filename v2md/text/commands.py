"""Spoken commands and punctuation: "comma", "new paragraph", "scratch that", …

Each language's commands are a table in data (``v2md/data/commands/<lang>.toml``),
extended or overridden by the user's file of the same name under
``$XDG_CONFIG_HOME/v2m/commands/``. ``apply`` rewrites decoded text with them;
it is a pure function of the text and the table.

The same words are ordinary words in prose ("the trial period ends", "a
comma-separated list"), so a phrase counts as a command only where the speaker
paused next to it. Whisper writes the pauses it hears as punctuation, so a
phrase is a command when punctuation (or the end of the text) comes right
before or after it, and not after an article or similar ("a full stop"). A
hyphenated word is never a command, and "literal" before a phrase writes its
words. ``benchmarks/commands_bench.py`` measures the rules on dictated commands
(exact text, commands carried out) and on prose with the command words (false
commands), in each language of the tables, and what they add to a Stop.

Whisper mishears a command now and then ("Andclamation mark", "peer it"): a run of words
set off by pauses on both sides that is a near miss of a phrase (``nearmiss.py``) is that
command, unless it is one word the model writes whole ("Colin", "karma": a word it meant).
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from v2md.errors import InvalidArgumentError
from v2md.text.nearmiss import Lexicon, Targets, key

log = logging.getLogger(__name__)

PACKAGE_TABLES = Path(__file__).resolve().parent.parent / "data" / "commands"

# A word: letters and digits, with inner apostrophes and hyphens ("d'interrogation",
# "comma-separated" is one word, so never the command "comma").
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")
# What Whisper writes for a pause; dropped beside a command, which replaces it.
_PAUSE_MARKS = ",.;:!?\u2026-\u2013\u2014 \t\n"
_SENTENCE_END = ".?!\n"
# A near miss of a command is this close to it, as a share of its letters, and only phrases
# of at least NEAR_MISS_LETTERS letters have near misses ("peer it" is 1.5 from "period").
NEAR_MISS_RATIO = 0.25
NEAR_MISS_LETTERS = 4


class Kind(StrEnum):
    PUNCTUATION = "punctuation"  # joined to the word before: . , ? ) ”
    OPENING = "opening"  # joined to the word after: ( “
    LAYOUT = "layout"  # line breaks; the next word starts a sentence
    SCRATCH = "scratch"  # drops the sentence before it


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # case-folded
    kind: Kind
    written: str


@dataclass
class Table:
    """One language's commands, as loaded from its TOML files."""

    language: str
    prompt: str = ""
    literal: frozenset[str] = frozenset()
    words_before: frozenset[str] = frozenset()
    # First word of a phrase -> its commands, longest first.
    commands: dict[str, list[Command]] = field(default_factory=dict)
    # Runs of n words -> the phrases they may be near misses of (near_misses).
    _near: dict[int, tuple[list[Command], Targets]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def add(self, phrase: str, kind: Kind, written: str) -> None:
        words = tuple(w.casefold() for w in _WORD.findall(phrase))
        if not words:
            raise ValueError(f"{phrase!r} has no words")
        self._near.clear()
        same = self.commands.setdefault(words[0], [])
        same[:] = [c for c in same if c.words != words]
        if written or kind is Kind.SCRATCH:
            same.append(Command(words, kind, written))
            same.sort(key=lambda c: -len(c.words))

    def near_misses(self, words: int) -> tuple[list[Command], Targets]:
        """The commands a run of ``words`` words may be a near miss of (phrases of one word
        fewer to one more), and their search, whose memo lasts as long as the table."""
        if words not in self._near:
            commands = [c for same in self.commands.values() for c in same]
            keys = [
                key("".join(c.words)) if abs(len(c.words) - words) <= 1 else "" for c in commands
            ]
            self._near[words] = (commands, Targets(keys, NEAR_MISS_RATIO, NEAR_MISS_LETTERS))
        return self._near[words]

    @property
    def longest(self) -> int:
        """The most words a phrase has."""
        return max((len(c.words) for same in self.commands.values() for c in same), default=0)


def table_path(directory: Path, language: str) -> Path:
    return directory / f"{language}.toml"


class Tables:
    """Each language's table, loaded on first use and again when the user's file changes
    (an edit applies on the next decode, without a restart)."""

    def __init__(self, user_dir: Path) -> None:
        self._user_dir = user_dir
        self._loaded: dict[str, tuple[float | None, Table | None]] = {}

    def get(self, language: str) -> Table | None:
        path = table_path(self._user_dir, language)
        try:
            stamp: float | None = path.stat().st_mtime
        except OSError:
            stamp = None
        cached = self._loaded.get(language)
        if cached is None or cached[0] != stamp:
            try:
                table = load_table(language, self._user_dir)
            except InvalidArgumentError as exc:
                log.error("%s; using the built-in commands for %s", exc, language)
                table = load_table(language)
            cached = self._loaded[language] = (stamp, table)
        return cached[1]


def load_table(language: str, user_dir: Path | None = None) -> Table | None:
    """The table for ``language``: the package's, then the user's file over it; None when
    neither exists. A broken file is an InvalidArgument error naming it."""
    table = Table(language)
    found = False
    for directory in (PACKAGE_TABLES, user_dir):
        if directory is None:
            continue
        path = table_path(directory, language)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InvalidArgumentError(f"command table {path}: {exc}") from None
        try:
            _merge(table, data)
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidArgumentError(f"command table {path}: {exc}") from None
        found = True
    return table if found else None


def _merge(table: Table, data: dict[str, Any]) -> None:
    unknown = set(data) - {"prompt", "literal", "words_before", "scratch", *Kind}
    if unknown:
        raise ValueError(f"unknown keys {', '.join(sorted(unknown))}")
    table.prompt = str(data.get("prompt", table.prompt))
    if "literal" in data:
        table.literal = frozenset(w.casefold() for w in data["literal"])
    if "words_before" in data:
        table.words_before = frozenset(w.casefold() for w in data["words_before"])
    for phrase in data.get("scratch", ()):
        table.add(phrase, Kind.SCRATCH, "")
    for kind in (Kind.PUNCTUATION, Kind.OPENING, Kind.LAYOUT):
        for phrase, written in data.get(kind.value, {}).items():
            if not isinstance(written, str):
                raise ValueError(f"[{kind}] {phrase!r} must be a string")
            table.add(phrase, kind, written)


@dataclass(frozen=True)
class _Match:
    start: int  # character offsets in the text
    end: int
    command: Command
    first_word: int  # index into the words
    last_word: int


def _matches(text: str, table: Table, lexicon: Lexicon) -> tuple[list[re.Match[str]], list[_Match]]:
    """The text's words and every phrase of the table among them (longest first, no
    overlaps, the words of a phrase separated by spaces only), and with a lexicon, near
    misses of the phrases set off by pauses."""
    words = list(_WORD.finditer(text))
    found: list[_Match] = []
    near = _NearMisses(text, words, table) if lexicon else None
    i = 0
    while i < len(words):
        for command in table.commands.get(words[i].group().casefold(), ()):
            n = len(command.words)
            run = words[i : i + n]
            if len(run) == n and all(
                w.group().casefold() == c
                and (k == 0 or not text[run[k - 1].end() : w.start()].strip())
                for k, (w, c) in enumerate(zip(run, command.words, strict=True))
            ):
                found.append(_Match(run[0].start(), run[-1].end(), command, i, i + n - 1))
                i += n
                break
        else:
            match = near.at(i, lexicon) if near is not None else None
            if match is not None:
                found.append(match)
                i = match.last_word + 1
            else:
                i += 1
    return words, found


class _NearMisses:
    """Near misses of a table's phrases among a text's words."""

    def __init__(self, text: str, words: list[re.Match[str]], table: Table) -> None:
        self._text = text
        self._words = words
        self._table = table
        self._longest = table.longest + 1

    def _paused_after(self, end: int) -> bool:
        """Whether pause marks (or the text's end) come right after word ``end``."""
        if end + 1 == len(self._words):
            return True
        return bool(self._text[self._words[end].end() : self._words[end + 1].start()].strip())

    def at(self, first: int, lexicon: Lexicon) -> _Match | None:
        """The nearest near miss of a phrase starting at word ``first``, if any: a run of
        words set off by pause marks (or the text's ends) on both sides."""
        words, best = self._words, None
        if first > 0 and not self._paused_after(first - 1):
            return None  # most words: none starts here
        for last in range(first, min(first + self._longest, len(words))):
            if last > first and self._paused_after(last - 1):
                break
            if not self._paused_after(last):
                continue
            run = words[first : last + 1]
            if len(run) == 1 and lexicon.common(run[0].group()):
                continue  # a word the decoder meant
            if run[0].group().casefold() in self._table.words_before:
                break  # "ein neuer Absatz": the article keeps it words, as for an exact phrase
            commands, targets = self._table.near_misses(len(run))
            found = targets.nearest(key("".join(w.group() for w in run)))
            if found is not None and (best is None or found[1] < best[1]):
                command = commands[found[0]]
                best = (_Match(run[0].start(), run[-1].end(), command, first, last), found[1])
        return best[0] if best is not None else None


def apply(text: str, table: Table, lexicon: Lexicon | None = None) -> str:
    """``text`` with the table's commands carried out where they were said as commands;
    with a ``lexicon`` (the words the decoder writes whole), near misses of them too."""
    lexicon = lexicon or Lexicon()
    words, found = _matches(text, table, lexicon)
    if not found:
        return text
    out = _Writer(lexicon)
    at = 0  # text before this offset is written
    for index, match in enumerate(found):
        before = words[match.first_word - 1] if match.first_word else None
        gap_before = text[before.end() : match.start] if before else ""
        after = words[match.last_word + 1] if match.last_word + 1 < len(words) else None
        gap_after = text[match.end : after.start()] if after else text[match.end :]
        spoken_before = before is not None and not gap_before.strip()
        previous = before.group().casefold() if before is not None and spoken_before else ""
        if before is not None and previous in table.literal:
            out.text(text[at : before.start()])
            out.text(text[match.start : match.end])
            at = match.end
            continue
        neighbour = (index > 0 and found[index - 1].last_word == match.first_word - 1) or (
            index + 1 < len(found) and found[index + 1].first_word == match.last_word + 1
        )
        if previous in table.words_before or not (
            neighbour or _paused(match, before, gap_before, gap_after, after)
        ):
            continue  # words, written as they are with the text around them
        kept = text[at : match.start]
        # Whisper's mark for the pause goes, except before a line break: "Dear Anna,"
        # and "Send it." keep theirs.
        out.text(kept if match.command.kind is Kind.LAYOUT else kept.rstrip(_PAUSE_MARKS))
        dropped = gap_after[: len(gap_after) - len(gap_after.lstrip(_PAUSE_MARKS))]
        out.command(match.command, ended=any(c in ".?!" for c in dropped))
        at = match.end + len(dropped)
    out.text(text[at:])
    return out.result()


def _paused(
    match: _Match,
    before: re.Match[str] | None,
    gap_before: str,
    gap_after: str,
    after: re.Match[str] | None,
) -> bool:
    """Whether the speaker paused at a command: punctuation before it, or for a command that
    does not end the word before (a line break, an opening quote, "scratch that"), the
    start of the text or punctuation after it. Punctuation after a mark is not enough:
    prose has "after a short period, we left" (benchmarks/commands_bench.py counts the false
    commands on prose)."""
    if gap_before.strip():
        return True
    if match.command.kind is Kind.PUNCTUATION:
        return False
    return before is None or bool(gap_after.strip()) or after is None


class _Writer:
    """Builds the rewritten text: spacing and capitals around what commands write."""

    def __init__(self, lexicon: Lexicon) -> None:
        self._lexicon = lexicon
        self._buf = ""
        self._glue = False  # no space before the next text (after an opening mark)
        self._opened = ""  # the opening mark just written, which the next text may repeat
        self._capital = False  # the next text starts a sentence
        # The next text's capital came with a sentence end Whisper wrote for a pause, which
        # the command before it replaced ("open bracket. For this year").
        self._ended = False

    def text(self, piece: str) -> None:
        piece = piece.strip()
        if self._opened and piece.startswith(self._opened):
            # Whisper wrote the mark too ("abrir interrogación, ¿dónde"): once is enough.
            piece = piece[len(self._opened) :].lstrip()
        if not piece:
            return
        if self._capital:
            piece = piece[0].upper() + piece[1:]
        elif (
            self._ended
            and (first := _WORD.match(piece))
            and self._lexicon.sentence_capital(first.group())
        ):
            piece = piece[0].lower() + piece[1:]
        if self._buf and not self._glue and not self._buf[-1].isspace():
            self._buf += " "
        self._buf += piece
        self._glue = self._capital = self._ended = False
        self._opened = ""

    def command(self, command: Command, *, ended: bool = False) -> None:
        """Write ``command``; ``ended``: Whisper's marks after it, which it replaced, held a
        sentence end."""
        self._ended = ended
        self._opened = ""
        kind = command.kind
        if kind is Kind.SCRATCH:
            kept = self._buf.rstrip(_PAUSE_MARKS)
            end = max(kept.rfind(c) for c in _SENTENCE_END)
            self._buf = kept[: end + 1] if end >= 0 else ""
            self._capital = True
            self._glue = False
            return
        if kind is Kind.OPENING:
            # "¿", "«" or "(" where a sentence starts: the word after it starts the sentence
            # (Whisper wrote it lowercase after the comma it set after the command's words).
            before = self._buf.rstrip(" \t")
            self._capital = self._capital or not before or before[-1] in _SENTENCE_END
            if self._buf and not self._buf[-1].isspace() and not self._glue:
                self._buf += " "
            self._buf += command.written
            self._glue = True
            self._opened = command.written.strip()
            return
        self._buf = self._buf.rstrip(" \t") if kind is Kind.LAYOUT else self._buf.rstrip()
        self._buf += command.written
        self._glue = False
        self._capital = kind is Kind.LAYOUT or command.written.rstrip()[-1:] in _SENTENCE_END

    def result(self) -> str:
        return self._buf.strip(" \t")
