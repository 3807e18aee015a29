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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np
from rapidfuzz.distance import Indel, Levenshtein
from rapidfuzz.process import cdist

_VOWELS = frozenset("aeiouy")
# Letters that sound alike, or that Whisper swaps for each other on unclear speech.
_ALIKE = tuple(frozenset(group) for group in ("ckqg", "sz", "fv", "bp", "dt", "mn", "vw", "xks"))
_CHEAP = 0.5


def key(text: str) -> str:
    """``text``'s letters and digits, case-folded, without accents or anything else."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if c.isalnum())


# Each letter of a group -> what swapping it for a letter costs: nothing for itself, _CHEAP for
# another vowel or a letter alike (any other letter: 1.0).
_SWAPS = {
    letter: {other: _CHEAP for g in (_VOWELS, *_ALIKE) if letter in g for other in g}
    | {letter: 0.0}
    for letter in frozenset[str]().union(_VOWELS, *_ALIKE)
}


def _sound_classes() -> dict[str, str]:
    """Each letter of a cheap swap -> one letter standing for every letter it is linked to
    by cheap swaps, directly or through others (c, g, k, q, s, x and z are one class)."""
    classes: list[set[str]] = []
    for group in (_VOWELS, *_ALIKE):
        joined = set(group).union(*(c for c in classes if c & group))
        classes = [c for c in classes if not c & group] + [joined]
    return {letter: min(c) for c in classes for letter in c}


# Two letters of different classes never swap at _CHEAP.
_SOUNDS = str.maketrans(_sound_classes())


def _sounds(key: str) -> str:
    """``key`` with each letter written as its class (letters in no class as themselves)."""
    return key.translate(_SOUNDS)


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
    # A letter both keys start with is matched to itself: no alignment costs less, unless it
    # is a consonant one of them doubles (matching it further on and dropping the double at
    # _CHEAP may). So is one both end with. The table is built for what is left.
    shorter = min(len(a), len(b))
    start = 0
    while start < shorter and _same(a[start], b[start], drop_a[start], drop_b[start]):
        start += 1
    end = 0
    while start + end < shorter and _same(a[~end], b[~end], drop_a[~end], drop_b[~end]):
        end += 1
    if start or end:
        a, b = a[start : len(a) - end], b[start : len(b) - end]
        drop_a, drop_b = drop_a[start : len(drop_a) - end], drop_b[start : len(drop_b) - end]
    previous = list(accumulate(drop_b, initial=0.0))
    for x, drop in zip(a, drop_a, strict=True):
        swaps = _SWAPS.get(x) or {x: 0.0}
        here = lowest = previous[0] + drop
        current = [here]
        # The cheapest of the three steps into each cell of the row, written out rather than
        # min(): the search spends its time in this loop. (previous is one longer than b.)
        for diagonal, above, y, put in zip(previous, previous[1:], b, drop_b, strict=False):
            here += put
            step = diagonal + swaps.get(y, 1.0)
            if step < here:
                here = step
            step = above + drop
            if step < here:
                here = step
            if here < lowest:
                lowest = here
            current.append(here)
        if lowest > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _same(x: str, y: str, drop_x: float, drop_y: float) -> bool:
    """Whether two letters at the ends of their keys are the same, and a vowel or a letter
    neither key doubles."""
    return x == y and (x in _VOWELS or drop_x == drop_y == 1.0)


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

    The weighted distance, in Python, is computed only for the few targets that two plain
    edit distances, computed in C, do not rule out (a 150-word text never seen, 200 words of
    vocabulary: ~150 ms without them, ~2 ms with them). A run's answer is remembered too:
    live text is shaped at every update and the final text at Stop holds the same runs."""

    _MEMO_LIMIT = 20_000  # runs remembered before the memo starts afresh

    def __init__(
        self, keys: Sequence[str], ratio: float, minimum: int, *, whole: bool = False
    ) -> None:
        self.keys = list(keys)
        self._whole = whole
        # Each target's index and key, its limit, and the most edits of _CHEAP within it.
        self._usable = [
            (index, k, ratio * len(k), int(ratio * len(k) / _CHEAP))
            for index, k in enumerate(self.keys)
            if len(k) >= minimum
        ]
        self._letters = [k for _i, k, _l, _e in self._usable]
        self._edits = np.array([edits for *_t, edits in self._usable], dtype=np.int32)
        self._memo: dict[str, tuple[int, float] | None] = {}

    def nearest(self, run: str) -> tuple[int, float] | None:
        """The index of the target nearest ``run`` (a key) and the distance; None when none
        is near enough or two different ones are equally near."""
        if run not in self._memo:
            self.search([run])
        return self._memo[run]

    def search(self, runs: Iterable[str]) -> None:
        """Works out and remembers the answer for each of ``runs`` not yet known: a text's
        runs are bounded against the targets in one call into C, cheaper than one each."""
        new = [run for run in dict.fromkeys(runs) if run not in self._memo]
        if len(self._memo) + len(new) > self._MEMO_LIMIT:
            self._memo.clear()
        if not new or not self._usable:
            self._memo.update(dict.fromkeys(new))
            return
        # Every edit costs at least _CHEAP: a target more plain edits away from a run than
        # fit within its limit is not near it (all runs against all targets in one call).
        cutoff = int(self._edits.max())
        edits = cdist(new, self._letters, scorer=Levenshtein.distance, score_cutoff=cutoff)
        for run, near in zip(new, edits <= self._edits, strict=True):
            self._memo[run] = self._nearest(run, np.flatnonzero(near).tolist())

    def _nearest(self, run: str, near: list[int]) -> tuple[int, float] | None:
        """``nearest`` among the targets at positions ``near`` of those usable."""
        sounds = _sounds(run)
        drop_run = _indels(run)
        best: tuple[int, float] | None = None
        tied = False
        for at in near:
            index, target, limit, most = self._usable[at]
            # Nor is one whose letters' classes are too far apart: a letter not matched by one
            # of its class is dropped or put in (at least _CHEAP) or swapped for a letter of
            # another class (1.0, two letters' worth), so the classes' distance in letters
            # dropped and put in (Indel) is a lower bound too.
            if Indel.distance(sounds, _sounds(target), score_cutoff=most) > most:
                continue
            if self._whole and len(run) > len(target) and target in run:
                continue
            found = distance(run, target, drop_run, _indels(target), limit)
            if found > limit:
                continue
            if best is None or found < best[1]:
                best, tied = (index, found), False
            elif found == best[1] and target != self.keys[best[0]]:
                tied = True
        return None if tied else best
