"""Near misses: a decoded word, or a run of words, spelled a little differently from a phrase
the text rules know (a spoken command, a word of the user's vocabulary).

Whisper hears an unknown name as the nearest words it knows ("Norblax" for "Zorblax",
"Quinn Taro" for "Quintaro") and a command word now and then as something close to it
("Andclamation mark", "peer it"). Two spellings are compared on their letters alone (case,
accents, spaces, hyphens and apostrophes aside), by an edit distance in which what sounds
alike costs less: one vowel for another, a doubled letter, ``c``/``k``, ``d``/``t`` and such.

A word the model writes whole (one token of its vocabulary: the ~25,000 commonest words,
which ``Lexicon`` holds) is a word the decoder meant, never a near miss of anything: only
runs with a word the model had to spell out piece by piece are corrected. These are pure
functions; ``v2md.text`` joins them to the vocabulary and the command tables.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_VOWELS = frozenset("aeiouy")
# Letters that sound alike, or that Whisper swaps for each other on unclear speech.
_ALIKE = tuple(frozenset(group) for group in ("ckqg", "sz", "fv", "bp", "dt", "mn", "vw", "xks"))
_CHEAP = 0.5


def key(text: str) -> str:
    """``text``'s letters and digits, case-folded, without accents or anything else."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum())


# Pairs of letters one can stand for the other at _CHEAP: vowels, and letters alike.
_ALIKE_PAIRS = frozenset(
    (a, b) for group in (_VOWELS, *_ALIKE) for a in group for b in group if a != b
)


def _indels(word: str) -> list[float]:
    """The cost of each letter of ``word`` being there or not: less for a vowel or a doubled
    letter."""
    return [
        _CHEAP
        if c in _VOWELS
        or (at > 0 and word[at - 1] == c)
        or (at + 1 < len(word) and word[at + 1] == c)
        else 1.0
        for at, c in enumerate(word)
    ]


def distance(a: str, b: str, drop_a: list[float], drop_b: list[float], limit: float) -> float:
    """The weighted edit distance between two keys, given each one's letter costs
    (``_indels``); anything over ``limit`` may come back as just over it (the search stops
    early)."""
    previous = [0.0]
    for cost in drop_b:
        previous.append(previous[-1] + cost)
    for i, x in enumerate(a):
        drop = drop_a[i]
        current = [previous[0] + drop]
        for j, y in enumerate(b):
            swap = 0.0 if x == y else _CHEAP if (x, y) in _ALIKE_PAIRS else 1.0
            current.append(min(previous[j] + swap, previous[j + 1] + drop, current[j] + drop_b[j]))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class Lexicon:
    """The words the decoder writes whole (case-folded). Empty: none is known, and nothing is
    corrected as a near miss."""

    words: frozenset[str] = frozenset()
    # Those of them it writes in lowercase too ("for", not "Monday"): where one has a capital,
    # it is the capital of a sentence's start.
    lowercase: frozenset[str] = frozenset()

    @classmethod
    def of(cls, words: Iterable[str]) -> Lexicon:
        """The lexicon of ``words`` as the decoder writes them."""
        written = frozenset(words)
        return cls(
            frozenset(w.casefold() for w in written), frozenset(filter(str.islower, written))
        )

    def __bool__(self) -> bool:
        return bool(self.words)

    def common(self, word: str) -> bool:
        """Whether ``word`` (apostrophes and hyphens allowed) is made only of whole words."""
        parts = [p for p in word.casefold().replace("\u2019", "'").replace("-", "'").split("'")]
        return all(p in self.words or p in _CLITICS for p in parts if p)

    def sentence_capital(self, word: str) -> bool:
        """Whether ``word``'s capital can only be a sentence's: "For", not "Monday", "I" or
        "NASA"."""
        return word[:1].isupper() and word[1:].islower() and word.lower() in self.lowercase


# What follows an apostrophe in a word the decoder writes as two tokens ("don't", "Anna's").
_CLITICS = frozenset(("s", "t", "d", "ll", "re", "ve", "m"))


class Targets:
    """Phrases (keys) that runs of words may be near misses of, each within ``ratio`` of its
    length; one under ``minimum`` letters has none, and with ``whole``, a run that holds a
    target and more ("Zorblaxian") is not a near miss of it.

    A run's answer is remembered: live text is shaped at every update and the final text at
    Stop holds the same runs, so a Stop looks up what the updates worked out (200 words of
    vocabulary: a cold search of a 150-word text takes ~150 ms in Python)."""

    _MEMO_LIMIT = 20_000  # runs remembered before the memo starts afresh

    def __init__(
        self, keys: Sequence[str], ratio: float, minimum: int, *, whole: bool = False
    ) -> None:
        self.keys = list(keys)
        self._ratio = ratio
        self._whole = whole
        self._usable = [
            (index, k, Counter(k), _indels(k), ratio * len(k))
            for index, k in enumerate(self.keys)
            if len(k) >= minimum
        ]
        self._memo: dict[str, tuple[int, float] | None] = {}

    def nearest(self, run: str) -> tuple[int, float] | None:
        """The index of the target nearest ``run`` (a key) and the distance; None when none
        is near enough or two different ones are equally near."""
        if run not in self._memo:
            if len(self._memo) >= self._MEMO_LIMIT:
                self._memo.clear()
            self._memo[run] = self._search(run)
        return self._memo[run]

    def _search(self, run: str) -> tuple[int, float] | None:
        best: tuple[int, float] | None = None
        tied = False
        letters = Counter(run).items()
        drop_run = _indels(run)
        for index, target, its_letters, drop_target, limit in self._usable:
            if _CHEAP * abs(len(run) - len(target)) > limit:
                continue
            if self._whole and len(run) > len(target) and target in run:
                continue
            # Every edit costs at least _CHEAP and mends at most one letter on each side, so
            # the letters one has more of than the other bound the distance from below.
            shared = sum(min(n, its_letters[c]) for c, n in letters)
            if _CHEAP * max(len(run), len(target)) - _CHEAP * shared > limit:
                continue
            found = distance(run, target, drop_run, drop_target, limit)
            if found > limit:
                continue
            if best is None or found < best[1]:
                best, tied = (index, found), False
            elif found == best[1] and target != self.keys[best[0]]:
                tied = True
        return None if tied else best
