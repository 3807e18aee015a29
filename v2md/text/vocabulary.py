"""The user's own words and replacements, kept in ``$XDG_DATA_HOME/v2m/vocabulary.json``.

Words (names, jargon, product names) go into the decoder's prompt before each
decode and into the LLM's refine instructions, so that Whisper spells them as
the user does. Replacements rewrite what Whisper wrote after decoding: the
heard phrase matches whole words only, whatever its case and the spaces between
its words, and is replaced by the written form exactly as given, in one pass (a
replacement's output is never replaced again). Then a near miss of one of the words
("Norblax" or "Nordlax" for "Zorblax", "Quinn Taro" for "Quintaro") becomes the word as the
user spells it (``correct``, by the rules of ``nearmiss.py``).

Every change is written to disk before the call returns, atomically, so the
list survives a restart or a crash, and applies to the next decode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from v2md.errors import InvalidArgumentError, StorageError
from v2md.text.nearmiss import Lexicon, Targets, key

log = logging.getLogger(__name__)

FILE_NAME = "vocabulary.json"
MAX_WORDS = 200
MAX_WORD_CHARS = 64
MAX_REPLACEMENTS = 500
MAX_PHRASE_CHARS = 200
# Whisper reads at most 223 prompt tokens and keeps the last ones: the words listed in
# the prompt stop at this many characters, newest first, leaving room for the rest.
PROMPT_CHARS = 400
# A near miss is this close to a word of the user's, as a share of the word's letters, and
# only words of at least NEAR_MISS_LETTERS letters have near misses ("Nordlax" is two
# letters from "Zorblax": 0.29 of 7). Measured in tests/test_vocabulary_live.py.
NEAR_MISS_RATIO = 0.3
NEAR_MISS_LETTERS = 5
# A word of the text, its inner apostrophes and hyphens included; a possessive "'s" is kept
# apart from what it follows.
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*?(?=(?:['\u2019][sS])?(?!['\u2019-]?\w))")


def checked(text: str, what: str, limit: int) -> str:
    """``text`` trimmed; an InvalidArgument error if it is empty, too long or holds a control
    character (a tab or newline in a word would end up typed into the focused app)."""
    text = text.strip()
    if not text:
        raise InvalidArgumentError(f"give a {what}: it is empty")
    if len(text) > limit:
        raise InvalidArgumentError(f"the {what} is {len(text)} characters long; at most {limit}")
    if any(unicodedata.category(c).startswith("C") for c in text):
        raise InvalidArgumentError(f"the {what} holds a control character: {text[:40]!r}")
    return " ".join(text.split())


class Vocabulary:
    """Words and replacements, loaded once and written back after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._words: list[str] = []
        self._replacements: dict[str, tuple[str, str]] = {}  # folded heard -> (heard, written)
        self._pattern: re.Pattern[str] | None = None
        # The words the near-miss search was built for, and what it built (_near_misses).
        self._near: tuple[list[str], dict[str, tuple[str, int]], dict[int, Targets]] | None = None
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self._words = [str(w) for w in data.get("words", [])]
            for heard, written in data.get("replacements", []):
                self._replacements[str(heard).casefold()] = (str(heard), str(written))
        except FileNotFoundError:
            return
        except OSError as exc:  # changes will fail with a Storage error, saying why
            log.error("%s cannot be read (%s); starting with an empty vocabulary", self.path, exc)
            return
        except (ValueError, TypeError, AttributeError) as exc:
            # Moved aside, not overwritten: the user's list is theirs to recover.
            aside = self.path.with_name(FILE_NAME + ".broken")
            log.error("%s is not a vocabulary (%s); moved to %s", self.path, exc, aside)
            self._words, self._replacements = [], {}
            with contextlib.suppress(OSError):
                self.path.replace(aside)
        self._compile()

    def _save(self) -> None:
        data = {"words": self._words, "replacements": list(self._replacements.values())}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".vocabulary-")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, ensure_ascii=False, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    # ---- words ----------------------------------------------------------------------------

    @property
    def words(self) -> list[str]:
        return list(self._words)

    def add_word(self, word: str) -> None:
        word = checked(word, "word", MAX_WORD_CHARS)
        if any(w.casefold() == word.casefold() for w in self._words):
            self._words = [word if w.casefold() == word.casefold() else w for w in self._words]
        elif len(self._words) >= MAX_WORDS:
            raise InvalidArgumentError(
                f"the vocabulary holds {MAX_WORDS} words, the most it takes: remove one first"
            )
        else:
            self._words.append(word)
        self._save()

    def remove_word(self, word: str) -> None:
        folded = checked(word, "word", MAX_WORD_CHARS).casefold()
        kept = [w for w in self._words if w.casefold() != folded]
        if len(kept) == len(self._words):
            raise InvalidArgumentError(f"{word.strip()!r} is not in the vocabulary")
        self._words = kept
        self._save()

    def prompt(self) -> str:
        """The words for the decoder's prompt, newest first up to PROMPT_CHARS."""
        shown: list[str] = []
        length = 0
        for word in reversed(self._words):
            length += len(word) + 2
            if length > PROMPT_CHARS:
                break
            shown.append(word)
        return ", ".join(reversed(shown)) + "." if shown else ""

    # ---- replacements -----------------------------------------------------------------------

    @property
    def replacements(self) -> list[tuple[str, str]]:
        return list(self._replacements.values())

    def set_replacement(self, heard: str, written: str) -> None:
        heard = checked(heard, "heard phrase", MAX_PHRASE_CHARS)
        written = checked(written, "written form", MAX_PHRASE_CHARS)
        key = heard.casefold()
        if key not in self._replacements and len(self._replacements) >= MAX_REPLACEMENTS:
            raise InvalidArgumentError(
                f"there are {MAX_REPLACEMENTS} replacements, the most there may be: "
                "remove one first"
            )
        self._replacements[key] = (heard, written)
        self._compile()
        self._save()

    def remove_replacement(self, heard: str) -> None:
        key = checked(heard, "heard phrase", MAX_PHRASE_CHARS).casefold()
        if self._replacements.pop(key, None) is None:
            raise InvalidArgumentError(f"there is no replacement for {heard.strip()!r}")
        self._compile()
        self._save()

    def _compile(self) -> None:
        if not self._replacements:
            self._pattern = None
            return
        phrases = sorted(self._replacements, key=len, reverse=True)  # longest first
        alternatives = "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)

    def replace(self, text: str) -> str:
        """``text`` with every heard phrase replaced by its written form."""
        if self._pattern is None:
            return text

        def written(match: re.Match[str]) -> str:
            found = self._replacements.get(" ".join(match.group().split()).casefold())
            return found[1] if found is not None else match.group()

        return self._pattern.sub(written, text)

    # ---- near misses ------------------------------------------------------------------------

    def correct(self, text: str, lexicon: Lexicon) -> str:
        """``text`` with each near miss of a word (a run of words, for a word of several
        or one Whisper split) written as the word. A run of words the model writes whole
        is never a near miss; with no lexicon, nothing is."""
        if not lexicon or not self._words:
            return text
        targets, sized = self._near_misses()
        longest = max(sized)
        words = list(_WORD.finditer(text))
        whole = [lexicon.common(w.group()) for w in words]
        keys = [key(w.group()) for w in words]  # a run's key is its words' keys joined
        runs: list[tuple[int, int, str]] = []  # (first, last, key) of runs not all whole words
        for first in range(len(words)):
            for last in range(first, min(first + longest, len(words))):
                if last > first and text[words[last - 1].end() : words[last].start()].strip():
                    break  # punctuation between: not one run
                if not all(whole[first : last + 1]):
                    runs.append((first, last, "".join(keys[first : last + 1])))
        for n, near in sized.items():
            near.search(run for first, last, run in runs if last - first + 1 == n)
        found: list[tuple[float, int, int, str]] = []  # (distance per letter, first, last, word)
        for first, last, run in runs:
            near = sized[last - first + 1]
            best = near.nearest(run)
            if best is not None:
                matched = near.keys[best[0]]
                found.append((best[1] / len(matched), first, last, targets[matched][0]))
        taken: set[int] = set()
        chosen: list[tuple[int, int, str]] = []
        for _apart, first, last, written in sorted(found):
            span = set(range(first, last + 1))
            if not span & taken:
                taken |= span
                chosen.append((words[first].start(), words[last].end(), written))
        for start, end, written in sorted(chosen, reverse=True):
            text = text[:start] + written + text[end:]
        return text

    def _near_misses(self) -> tuple[dict[str, tuple[str, int]], dict[int, Targets]]:
        """Each word's key (and each part's, for a word of several) -> (as written, words);
        and for runs of n words, the keys of words of n - 1 to n + 1 words. Built again only
        when the words change, so their memo of runs lasts from one update to the next."""
        if self._near is None or self._near[0] != self._words:
            targets: dict[str, tuple[str, int]] = {}
            for word in self._words:
                parts = word.split()
                targets.setdefault(key(word), (word, len(parts)))
                for part in parts if len(parts) > 1 else ():
                    targets.setdefault(key(part), (part, 1))
            longest = max(n for _w, n in targets.values()) + 1
            sized = {
                n: Targets(
                    [k for k, (_w, m) in targets.items() if k and abs(m - n) <= 1],
                    NEAR_MISS_RATIO,
                    NEAR_MISS_LETTERS,
                    whole=True,
                )
                for n in range(1, longest + 1)
            }
            self._near = (list(self._words), targets, sized)
        return self._near[1], self._near[2]
