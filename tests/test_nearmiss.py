"""The near-miss search (``v2md/text/nearmiss.py``): the weighted distance, and the bounds
that spare the search most of it, which never change an answer."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st
from rapidfuzz.distance import Indel, Levenshtein

from v2md.text.nearmiss import (
    _ALIKE,
    _CHEAP,
    _VOWELS,
    Targets,
    _indels,
    _sounds,
    distance,
    key,
)

# Syllables of names as a user has them, and of command words, so that runs share letters.
_SYLLABLES = "zor blax quin ta ro vel mi ra dros kov ku bre xa snar plex fu tron pe ri od".split()
_LETTERS = "aeiouybcdfghjklmnpqrstvwxz0123456789"


@given(st.text(), st.text())
def test_a_key_of_words_is_their_keys_joined(a, b):
    assert key(a + b) == key(a) + key(b)  # what Vocabulary.correct builds a run's key from


def _table(a: str, b: str) -> float:
    """The weighted edit distance by the whole table, as the module's docstring says it."""
    drop_a, drop_b = _indels(a), _indels(b)
    table = [[0.0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        for j in range(len(b) + 1):
            steps = []
            if i and j:
                x, y = a[i - 1], b[j - 1]
                alike = any(x in g and y in g for g in (_VOWELS, *_ALIKE))
                steps.append(table[i - 1][j - 1] + (0.0 if x == y else _CHEAP if alike else 1.0))
            if i:
                steps.append(table[i - 1][j] + drop_a[i - 1])
            if j:
                steps.append(table[i][j - 1] + drop_b[j - 1])
            table[i][j] = min(steps, default=0.0)
    return table[-1][-1]


def _weighted(a: str, b: str) -> float:
    return distance(a, b, _indels(a), _indels(b), math.inf)


# Keys of few letters, where shared ends, doubled letters and letters alike are common.
_KEYS = st.text("aeldtkc", max_size=10) | st.text(_LETTERS, max_size=14)


@given(_KEYS, _KEYS)
def test_the_weighted_distance_and_its_lower_bounds(a, b):
    weighted = _weighted(a, b)
    assert weighted == _table(a, b)
    assert _CHEAP * Levenshtein.distance(a, b) <= weighted
    assert _CHEAP * Indel.distance(_sounds(a), _sounds(b)) <= weighted


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4)))


def _misspelt(word: str, rng: random.Random) -> str:
    """``word`` with a few edits, cheap ones (a vowel, a letter alike, a doubled letter)
    more often, as Whisper misspells."""
    letters = list(word)
    for _ in range(rng.randint(0, 4)):
        at = rng.randrange(len(letters) + 1)
        edit = rng.random()
        if edit < 0.3 and at < len(letters):
            letters[at] = rng.choice("aeiouy" if letters[at] in "aeiouy" else "ckqgszfvbpdtmnw")
        elif edit < 0.5 and at < len(letters):
            letters.insert(at, letters[at])
        elif edit < 0.7 and at < len(letters):
            del letters[at]
        else:
            letters.insert(at, rng.choice(_LETTERS))
    return "".join(letters)


def _reference(targets: list[str], ratio: float, minimum: int, whole: bool, run: str):
    """``Targets.nearest`` by the weighted distance to every target, bounds aside."""
    best: tuple[int, float] | None = None
    tied = False
    for index, target in enumerate(targets):
        limit = ratio * len(target)
        if len(target) < minimum or (whole and len(run) > len(target) and target in run):
            continue
        found = _weighted(run, target)
        if found > limit:
            continue
        if best is None or found < best[1]:
            best, tied = (index, found), False
        elif found == best[1] and target != targets[best[0]]:
            tied = True
    return None if tied else best


def test_the_search_finds_what_the_weighted_distance_to_every_target_finds():
    rng = random.Random(19)
    answers = set()
    for ratio, minimum, whole in ((0.3, 5, True), (0.25, 4, False)):
        for _ in range(30):
            targets = [_word(rng) for _ in range(rng.randint(1, 60))]
            targets += rng.sample(targets, min(3, len(targets)))  # the same key twice
            search = Targets(targets, ratio, minimum, whole=whole)
            runs = [
                _misspelt(rng.choice(targets), rng) if rng.random() < 0.8 else _word(rng)
                for _ in range(40)
            ]
            search.search(runs[:20])  # a text's runs at once; the others one by one
            for run in runs:
                want = _reference(targets, ratio, minimum, whole, run)
                assert search.nearest(run) == want, (run, targets)
                answers.add(want is None)
    assert answers == {True, False}  # both near misses and none
