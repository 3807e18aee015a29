"""The final text of a dictation, decoded with full context while the user speaks.

Provisional text (``streaming.py``) sees a few seconds at a time and is meant for
the screen. The final text comes from here: at each pause the VAD finds, the
audio from the last settled point up to the pause is decoded as one piece, the
way a batch decode of a file sees it (no text prompt). The session also starts
that decode early, once speech has gone quiet for a moment but before the VAD
calls it a pause: a Stop right after the last word then finds it done or nearly,
and if speech goes on the decode is superseded by the next one from the same
start, so no word is lost or doubled at the seam.

Text settles pause by pause (the session reports a breath between sentences as
one). When a later decode from the same start begins with the words of the
decode up to an earlier pause (``pause_at``), every one or nearly
(a respelled word; then the later one's words are taken, but for words an earlier
start heard with the audio before them), and has heard at least
SETTLE_AFTER_S past that pause, the earlier decode is final: two decodes with
different amounts of context agree on it. That pause need not be the last one:
speech that pauses every second ("Thanks, comma, see you on Monday") settles at
a pause a few phrases back. Nor need the pause be the VAD's latest: a decode slower
than speech ends after the next pause is declared. The next window starts at that
pause, in silence, so no word is cut or heard twice, and the audio before it is
let go of. Where speech runs on past a pause without a breath, a decode in mid
speech (``confirm``) stands in for the later one once it has heard CONFIRM_AFTER_S
past it. Settled speech is never decoded again: each stretch is heard by a few
decodes however long the dictation, and a Stop decodes only the unsettled
tail (usually the last one or two utterances). Where decodes keep disagreeing,
the window grows with context until it would pass WINDOW_S, and the latest
decode up to a pause becomes final.

Measured through the daemon at real time with tiny.en (two cores; benchmarks/README.md):
final WER per speaker against TranscribeFile espeak +0.4, audiobook +0.5, telephone
prompts -0.2 points, a Stop 0.3 s after the last word 20-267 ms, CPU 0.19-0.28 s per audio
second.

Nothing is dropped: every sample stays here until final text covers it, up to
the capacity the caller sets; past that the oldest audio is handed back
(``spill``) for the caller to keep as a WAV.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Protocol

import numpy as np

from v2md.asr.streaming import word_key
from v2md.audio.format import SAMPLE_RATE

log = logging.getLogger(__name__)

# Whisper's window is 30 s; a little room so that the padded speech end fits in it.
WINDOW_S = 28.0
# Audio kept before speech begins after a long silence, so a first word is never clipped.
LEAD_IN_S = 1.0
# Audio a later decode must have heard past a pause before its agreement settles the text
# up to that pause: Whisper settles a sentence's words once it knows how the next begins.
# 4 s rather than 2 puts every speaker within half a point of TranscribeFile. Its longer
# windows end more often in a phrase tiny.en writes twice, which near agreement must not
# take for a respelling (RESPELT_WORDS; benchmarks/README.md).
SETTLE_AFTER_S = 4.0
# Speech past a pause, without a breath, after which a decode in mid speech confirms the
# text up to the pause (``confirm``): longer than most phrases, whose breath gives a decode
# at a pause with more context (confirming 2 s into every phrase made Spanish prompts'
# final WER 10.4 -> 12.2 %), short enough that a Stop after a long one decodes it alone.
CONFIRM_AFTER_S = 4.0
# Two decodes agree up to a pause where they share this much of its words (difflib's
# ratio) and the same words up to at most SEAM_SLACK before it: tiny.en respells an odd
# word at each decode (espeak's "quick brown fox": "round-fark stump", "round fox jump"),
# and demanding every word the same kept such a window from ever settling.
AGREE_RATIO = 0.7
SEAM_SLACK = 1
# The most words one respelling takes in either decode ("round-fark stump" / "round fox jump").
RESPELT_WORDS = 3
# What a decode may end a word with at a pause: the sentence's end, as the earlier decode
# (the one that ended there) wrote it.
_SEAM_MARKS = ".,;:!?…"
_SENTENCE_ENDS = ".!?…"


class SpeechDecoder(Protocol):
    """What the final pass needs of the Whisper worker."""

    async def transcribe_speech(self, audio: np.ndarray, *, in_speech: bool = False) -> str: ...


@dataclass(frozen=True)
class _Decode:
    """The text of the audio from the final pass's origin up to absolute sample ``end``."""

    text: str
    end: int
    # Its words were decoded with audio before the settled point, by a decode from an
    # earlier start: a decode from the settled point starts cold where they begin.
    heard_before: bool = False


class FinalPass:
    """Full-context final text over a growing recording (16 kHz mono float32).

    ``decode_to`` and ``finish`` must not overlap; ``append``, ``pause_at``,
    ``drop_silence`` and ``spill`` may run while a decode is in flight (its result is
    then discarded if the audio it started from was dropped meanwhile).
    """

    def __init__(self, decoder: SpeechDecoder, *, settle_after_s: float = SETTLE_AFTER_S) -> None:
        self._decoder = decoder
        self._settle_after = round(settle_after_s * SAMPLE_RATE)
        self._chunks: list[np.ndarray] = []  # audio from self._origin on
        self._kept = 0  # samples in _chunks
        self._origin = 0  # absolute sample where the kept audio starts: all before is final
        self._final: list[str] = []
        self._latest: _Decode | None = None  # the latest decode from _origin
        # The decodes from _origin that end at a pause, oldest first: any of them may be
        # settled by a later decode that heard SETTLE_AFTER_S past it. Not only the latest:
        # speech that pauses more often than that ("Thanks, comma, see you") would
        # otherwise never settle, and its window would grow to WINDOW_S.
        self._candidates: list[_Decode] = []
        # Absolute samples, after _origin, where the VAD heard speech end (plus pad) before a
        # pause. All of them, not only the last: a decode slower than speech ends at one
        # after the VAD has called the next quiet a pause too, and it still ends at a pause.
        self._pauses: set[int] = set()
        self._confirming: _Decode | None = None  # the candidate ``confirm`` last tried

    @property
    def text(self) -> str:
        """The final text so far and the latest decode after it."""
        latest = self._latest.text if self._latest is not None else ""
        return " ".join(t for t in (*self._final, latest) if t)

    @property
    def settled_text(self) -> str:
        """The final text of the audio no longer held."""
        return " ".join(self._final)

    @property
    def decoded_until(self) -> int:
        """Absolute sample up to which every sample has been decoded."""
        return self._origin if self._latest is None else max(self._latest.end, self._origin)

    @property
    def kept_samples(self) -> int:
        """Samples held because no final text covers them yet."""
        return self._kept

    @property
    def unfinished_audio(self) -> np.ndarray:
        """The audio final text does not cover yet (to keep if decoding fails)."""
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)

    def append(self, samples: np.ndarray) -> None:
        self._chunks.append(samples)
        self._kept += samples.size

    def pause_at(self, end: int) -> None:
        """Speech ended at absolute sample ``end`` (padded), in a pause the VAD declared or a
        breath the session counts as one: a decode up to there, done or in flight, may be
        settled by a later one that agrees with it."""
        self._pauses.add(end)
        if self._latest is not None and self._latest.end == end:
            self._add_candidate(self._latest)

    async def decode_to(self, end: int) -> None:
        """Decode from the last settled point up to absolute sample ``end``: a pause, or a
        moment of quiet that may turn into one (a decode started early)."""
        end = min(end, self._origin + self._kept)
        if end <= self.decoded_until:
            return
        if end - self._origin > WINDOW_S * SAMPLE_RATE:
            # No agreement within a window: the latest decode up to a pause becomes final.
            self._settle(self._candidate or self._latest)
        origin = self._origin
        text = await self._decoder.transcribe_speech(self._audio(origin, end))
        log.debug("decoded %.2f-%.2f s: %s", origin / SAMPLE_RATE, end / SAMPLE_RATE, text)
        if origin != self._origin:
            return  # audio it started from was spilled meanwhile; that decode no longer fits
        self._latest = _Decode(text.strip(), end)
        # The latest pause this decode heard far enough past, and agrees with it up to.
        for candidate in reversed(self._candidates):
            if (
                end - candidate.end >= self._settle_after
                and split_agreed(candidate.text, self._latest.text) is not None
            ):
                self._settle(candidate)
                break
        if end in self._pauses:
            self._add_candidate(self._latest)

    @property
    def _candidate(self) -> _Decode | None:
        """The decode up to the latest pause."""
        return self._candidates[-1] if self._candidates else None

    def _add_candidate(self, decode: _Decode) -> None:
        if self._candidate is not decode:
            self._candidates.append(decode)

    def confirm_due(self, now: int) -> bool:
        """Speech has run on CONFIRM_AFTER_S past a pause with no quiet since, and no decode
        has heard enough after the pause to settle the text before it: time to ``confirm``.
        Without it, an utterance spoken without a breath kept the text before it open, and
        a Stop right after decoded both (base, a 7.7 s Spanish prompt: 1.0 s for 0.45 s)."""
        candidate, latest = self._candidate, self._latest
        return (
            candidate is not None
            and latest is not None
            and candidate is not self._confirming
            and latest.end - candidate.end < self._settle_after
            and now - candidate.end >= CONFIRM_AFTER_S * SAMPLE_RATE
        )

    async def confirm(self, end: int) -> None:
        """Decode from the last settled point up to ``end``, in mid speech, to settle the
        decode up to the last pause where this one agrees with it (its words, as at a
        pause). Its own text after the pause is not kept: its last word is likely cut,
        and the next pause or a Stop decodes that speech again from the settled point."""
        candidate = self._confirming = self._candidate
        end = min(end, self._origin + self._kept)
        if candidate is None or end <= candidate.end:
            return
        origin = self._origin
        text = await self._decoder.transcribe_speech(self._audio(origin, end), in_speech=True)
        log.debug("confirming %.2f-%.2f s: %s", origin / SAMPLE_RATE, end / SAMPLE_RATE, text)
        if origin != self._origin or self._candidate is not candidate:
            return  # audio spilled meanwhile: that candidate is settled already
        split = split_agreed(candidate.text, text, keep_earlier=candidate.heard_before)
        if split is not None:
            # A decode since the pause (speech that went quiet a moment) heard less than
            # this one: its words are not the ones to settle, and the next pause decodes
            # its speech again.
            self._latest = None
            self._settle(_Decode(split[0], candidate.end))

    async def finish(self, end: int) -> str:
        """Decode what is left up to absolute sample ``end``; return the whole final text."""
        await self.decode_to(end)
        self._settle(self._latest)
        return self.text

    def drop_silence(self, now: int) -> None:
        """Nothing was said after the last decode up to absolute sample ``now``: forget the
        silence no window needs. Before any speech that is all but LEAD_IN_S; after a
        decode, silence stays context until a window would overflow with it anyway."""
        pending = self._latest is not None
        if now - self.decoded_until < (WINDOW_S if pending else LEAD_IN_S) * SAMPLE_RATE:
            return
        self._settle(self._latest)
        self._drop(now - round(LEAD_IN_S * SAMPLE_RATE))

    def spill(self, limit: int) -> np.ndarray:
        """Hand back the oldest audio no text covers, so that at most ``limit`` samples stay
        held (a worker that cannot keep up); the decode pending is made final first."""
        if self._kept <= limit:
            return np.zeros(0, np.float32)
        self._settle(self._latest)
        excess = max(0, self._kept - limit)
        spilled = self._audio(self._origin, self._origin + excess)
        self._drop(self._origin + excess)
        return spilled

    def _settle(self, decode: _Decode | None) -> None:
        """``decode`` becomes final and its audio is let go of; the next window starts
        where it ends. A later decode that agrees with it keeps the words after it."""
        if decode is None:
            return
        latest, self._latest, self._candidates = self._latest, None, []
        split = None
        if latest is not None and latest.end > decode.end:
            # The later decode's words where it agrees (it heard more after them), unless
            # the earlier ones were heard with audio before them too.
            split = split_agreed(decode.text, latest.text, keep_earlier=decode.heard_before)
        settled = split[0] if split is not None else decode.text
        if settled:
            self._final.append(settled)
        self._drop(decode.end)
        if latest is not None and split is not None:
            self._latest = _Decode(split[1], latest.end, heard_before=True)
            if latest.end in self._pauses:
                self._add_candidate(self._latest)

    def _audio(self, start: int, end: int) -> np.ndarray:
        whole = self.unfinished_audio
        return whole[start - self._origin : end - self._origin]

    def _drop(self, before: int) -> None:
        """Forget the audio before absolute sample ``before``."""
        drop = min(max(before - self._origin, 0), self._kept)
        self._origin += drop
        self._kept -= drop
        self._pauses = {p for p in self._pauses if p > self._origin}
        while drop:
            head = self._chunks[0]
            if head.size <= drop:
                self._chunks.pop(0)
                drop -= head.size
            else:
                self._chunks[0] = head[drop:]
                drop = 0


def split_agreed(earlier: str, later: str, *, keep_earlier: bool = False) -> tuple[str, str] | None:
    """Where ``later``, a decode from the same start that heard more, says what ``earlier``
    said: (its words for that, its words after). It agrees where it begins with the same
    words (case and punctuation aside), or nearly: most words the same (AGREE_RATIO) and
    the same up to at most SEAM_SLACK words before the end of ``earlier``, Whisper
    respelling an odd word once it hears more ("round-fark stump over the lazy nog" /
    "round fox jump over the lazy dog"). None where it does not agree, or ``earlier`` has
    no words. Where they nearly agree, ``later``'s words are taken, unless
    ``keep_earlier``: ``earlier`` heard audio before the start that ``later`` starts cold
    at (espeak's "milk, bread" as "milk. Red" from a window starting at that comma)."""
    before, words = earlier.split(), later.split()
    if not before:
        return None
    old, new = [word_key(w) for w in before], [word_key(w) for w in words]
    if new[: len(old)] == old:
        end = len(old)
        head = before
    else:
        # Where ``earlier`` ends in ``later``: a word or two either way of its own count.
        slack = max(2, len(old) // 5)
        matcher = SequenceMatcher(None, old, new[: len(old) + slack], autojunk=False)
        blocks = [b for b in matcher.get_matching_blocks() if b.size]
        if not blocks:
            return None
        last = blocks[-1]
        unmatched = len(old) - (last.a + last.size)  # words of ``earlier`` after the last match
        # Words of ``earlier`` that differ after the last run of two or more that agree: a
        # lone common word ("period") matched far on is no sign that the words before it
        # agree ("I will be early, period" / "The first item is done, period").
        runs = [b for b in blocks if b.size >= 2]
        anchor = runs[-1].a + runs[-1].size if runs else 0
        differing = len(old) - anchor - sum(b.size for b in blocks if b.a >= anchor)
        if differing > SEAM_SLACK:
            return None
        # Near agreement is a respelling in place: between the runs that agree, a few words
        # of each decode, as many in one as in the other give or take one. Not a phrase
        # written twice, or a sentence where the earlier decode had one ("The first item is
        # done. The first item is done." / "The first item is done, period, new line, the
        # second item is next").
        a = b = 0
        for block in blocks:
            gap_old, gap_new = block.a - a, block.b - b
            if max(gap_old, gap_new) > RESPELT_WORDS or abs(gap_old - gap_new) > 1:
                return None
            a, b = block.a + block.size, block.b + block.size
        end = min(len(new), last.b + last.size + unmatched)
        if abs(end - len(old)) > slack:
            return None
        matched = sum(b.size for b in blocks if b.a + b.size <= len(old) and b.b + b.size <= end)
        if 2 * matched / (len(old) + end) < AGREE_RATIO:
            return None
        head = before if keep_earlier else words[:end]
    # The earlier decode's punctuation at the pause: it ended there, so its mark ends the
    # sentence where the later one may run on with a comma ("noon?" / "noon, I will"),
    # which would hide the sentence end from "scratch that" (it drops what was said
    # since the pause). The words after it then begin a sentence ("reach. Does not").
    mark = before[-1][len(before[-1].rstrip(_SEAM_MARKS)) :]
    head = [*head[:-1], head[-1].rstrip(_SEAM_MARKS) + mark]
    rest = " ".join(words[end:])
    if mark and mark[-1] in _SENTENCE_ENDS:
        rest = rest[:1].upper() + rest[1:]
    return " ".join(head), rest
