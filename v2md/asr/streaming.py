"""Streaming transcription: provisional text while the user speaks.

The final text is not decoded here but by the full-context pass of
``finalpass.py``; each time that pass has decoded up to a pause, ``rebase``
takes its text as committed and drops the audio before the pause, so provisional
text converges to what will be final and the tail stays short.

Each update re-decodes only the unconfirmed tail of the recording and commits
the words two consecutive decodes agree on (LocalAgreement-2, the policy of
Macháček et al.'s whisper_streaming), so provisional text stops flickering.
Words are committed a whole sentence at a time, once the decodes have heard a
few seconds past its end: Whisper settles a sentence's words far better knowing
the sentence is over and how the next begins. Committed audio is cut off in the
pause after a sentence (CONTEXT_SENTENCES behind) or, for long run-on speech,
after the last committed word; it is never transcribed again. The committed
words before the cut travel along as Whisper's text prompt instead. Per-update
CPU and memory therefore depend on the tail, not on how long the dictation has
run. Decodes stop where the VAD last heard speech, so pauses cost no inference.
Live text never takes back a word it showed, except to replace it: words a decode
misses at the start of its window, or that lie past a rebase's pause, stay shown
(``keep_start``).
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from v2md.asr.types import Word
from v2md.audio.format import SAMPLE_RATE
from v2md.config import WhisperConfig
from v2md.errors import InvalidArgumentError

log = logging.getLogger(__name__)

PROMPT_WORDS = 40  # committed words kept as context for the next decodes
MIN_DECODE_S = 0.25  # Whisper invents words for slivers of audio: wait for more
TRIM_TAIL_S = 10.0  # past this, cut at the last committed word even mid-sentence
# No agreement for this long: show all but the last KEEP_S as committed. Provisional text
# only: the final text comes from the full-context pass, which never cuts audio this way.
HARD_TAIL_S = 20.0
KEEP_S = 3.0
# Committed sentences kept as audio at the start of each decode; their text goes along
# as the prompt either way. Measured when commits went word by word, on the accuracy
# test's speech (658 words): none, 9.27% WER; one, 9.12%, for 28% more inference and,
# through the daemon on two cores, 0.5 s from Stop to the final text instead of 0.2 s.
CONTEXT_SENTENCES = 0
# Agreed words are committed through the last sentence end that lies this far before the
# edge of the audio decoded. Measured on the accuracy bench's ten rates (1306 words, batch
# 6.43% WER): word by word with a 1 s margin, 8.42%; by sentence with 2 s after it, 7.58%;
# with 3 s, 5.97%. Without agreement (the first decode 2 s past the end), 8.19%.
SENTENCE_LOOKAHEAD_S = 3.0
# A tail this long with no sentence settled (run-on speech, or decodes that keep changing a
# word) is committed word by word instead, short of COMMIT_MARGIN_S: the edge word is often
# half-heard, and two decodes of the same partial sound agree on it.
UNSETTLED_TAIL_S = 6.0
COMMIT_MARGIN_S = 1.0
PAUSE_COMMIT_S = 1.0  # a pause this long after the speech the last decode covered ends it
SEAM_NGRAM = 5  # longest run of committed words a re-decode may repeat at the seam
_SENTENCE_END = re.compile("[.!?\u2026\u3002\uff01\uff1f][\"')\\]]*$")  # also CJK full stops
_NOT_WORD = re.compile(r"[^\w']+")


def word_key(text: str) -> str:
    """What two decodes must agree on: the word without case or punctuation."""
    return _NOT_WORD.sub("", text).casefold()


def ends_sentence(word: Word) -> bool:
    return bool(_SENTENCE_END.search(word.text.strip()))


def agreed_prefix(previous: Sequence[Word], current: Sequence[Word]) -> int:
    """How many leading words two consecutive hypotheses share."""
    count = 0
    for old, new in zip(previous, current, strict=False):
        if word_key(old.text) != word_key(new.text):
            break
        count += 1
    return count


def beyond_committed(words: Sequence[Word], committed: Sequence[Word]) -> list[Word]:
    """The words of a decode that come after the committed ones.

    A decode of the tail may start inside committed audio: drop words centred
    before the last committed word ended, then any repetition of the last
    committed words at the seam (timestamps alone are not exact).
    """
    if not committed:
        return list(words)
    end = committed[-1].end
    fresh = [w for w in words if (w.start + w.end) / 2 > end]
    if fresh and fresh[0].start - end < 1.0:
        committed_keys = [word_key(w.text) for w in committed]
        for n in range(min(SEAM_NGRAM, len(committed), len(fresh)), 0, -1):
            if committed_keys[-n:] == [word_key(w.text) for w in fresh[:n]]:
                return fresh[n:]
    return fresh


def keep_start(previous: Sequence[Word], current: Sequence[Word]) -> list[Word]:
    """The unconfirmed words to show after a decode: ``current``'s, behind the words of the
    ``previous`` hypothesis that end before ``current``'s first word starts.

    A decode may miss the start of what it was given (Whisper now and then skips the first
    words after a prompt, or hears nothing at all), or no longer hear it (its audio was cut
    off): live text then keeps those words instead of taking them back. Words it hears again
    replace the old ones, corrected or not; a repetition at the seam is dropped.
    """
    if not current:
        return list(previous)
    kept = [w for w in previous if w.end <= current[0].start]
    return [*kept, *beyond_committed(current, kept)]


class WordDecoder(Protocol):
    """What live text needs of the Whisper worker (``worker.WhisperWorker``): timed words."""

    async def transcribe(
        self, audio: np.ndarray, *, prompt: str = "", window_s: float | None = None
    ) -> list[Word]: ...


class ProvisionalText:
    """Turns a growing recording into provisional text with one WhisperWorker (the final
    text is ``finalpass``'s).

    ``append`` and ``rebase`` may be called at any time; updates must not overlap. An
    update in flight when ``rebase`` is called is discarded.
    """

    def __init__(self, worker: WordDecoder, cfg: WhisperConfig) -> None:
        self._worker = worker
        self._cfg = cfg
        self._rebased = 0  # counts rebases: an update that started before one is stale
        self._total = 0  # samples appended
        self._tail = np.zeros(0, dtype=np.float32)  # audio not yet cut off, from _tail_start
        self._tail_start = 0
        self._decoded_until = 0  # where the last decode's audio ended (absolute sample)
        self._text = ""  # committed text, Whisper's spacing
        self._recent: deque[Word] = deque(maxlen=PROMPT_WORDS)  # last committed, absolute times
        self._hypothesis: list[Word] = []  # unconfirmed words of the last decode
        self._shown: str | None = None

    @property
    def committed_text(self) -> str:
        return self._text.strip()

    @property
    def decoded_until(self) -> int:
        """Where the audio of the last decode ended (in samples from the start)."""
        return self._decoded_until

    def append(self, samples: np.ndarray) -> None:
        """Add 16 kHz mono float32 samples to the recording."""
        if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.floating):
            raise InvalidArgumentError("append float mono samples (a one-dimensional array)")
        samples = samples.astype(np.float32)  # a copy: callers may reuse their buffers
        self._total += samples.size
        self._tail = np.concatenate([self._tail, samples])

    async def update(self, end_sample: int | None = None) -> str | None:
        """Decode the unconfirmed tail (up to ``end_sample`` if given, e.g. where the VAD
        heard speech end); return the provisional full text if it changed.

        Nothing is decoded when no audio arrived before ``end_sample`` since the last
        decode, so a pause costs no inference, and a Stop after it needs no decode at all.
        Once a pause has lasted PAUSE_COMMIT_S, the last decode of the speech before it
        is final: it is committed, so the tail stays bounded however long the pause.
        """
        end = self._clamp(end_sample)
        if end <= self._decoded_until:
            if self._total - end >= PAUSE_COMMIT_S * SAMPLE_RATE:
                self._commit_hypothesis(end)
                # Keep the last seconds: the VAD may yet call their start speech.
                self._cut(max(end, self._total - round(KEEP_S * SAMPLE_RATE)))
            self._bound_tail()
            return None
        if end - self._tail_start < MIN_DECODE_S * SAMPLE_RATE:
            return None
        rebased = self._rebased
        decoded = await self._decode(self._tail[: end - self._tail_start], end)
        if rebased != self._rebased:
            return None  # a full-context decode replaced what this one started from
        words = keep_start(self._hypothesis, decoded)
        agreed = self._committable(words, agreed_prefix(self._hypothesis, words))
        self._commit(words[:agreed])
        self._hypothesis = words[agreed:]
        self._bound_tail()
        text = self._provisional_text()
        if text == self._shown:
            return None
        self._shown = text
        return text

    def rebase(self, sample: int, text: str) -> str:
        """Take ``text`` as the committed text of everything before absolute ``sample`` (a
        full-context decode up to a pause) and decode only what follows from now on; the
        provisional text to show now: ``text``, then the words heard after ``sample``."""
        self._rebased += 1
        self._text = f" {text}" if text else ""
        seconds = sample / SAMPLE_RATE
        # The last words, all ending at the pause: the prompt carries them, and the seam
        # check drops a decode's repetition of them.
        self._recent.clear()
        self._recent.extend(Word(seconds, seconds, f" {w}") for w in text.split()[-PROMPT_WORDS:])
        # Words already shown past the pause stay shown until a decode hears them again.
        self._hypothesis = [w for w in self._hypothesis if w.start >= seconds]
        self._decoded_until = sample
        self._cut(sample)
        self._shown = self._provisional_text()
        return self._shown

    def _provisional_text(self) -> str:
        return "".join([self._text, *(w.text for w in self._hypothesis)]).strip()

    def _clamp(self, end_sample: int | None) -> int:
        return self._total if end_sample is None else min(max(end_sample, 0), self._total)

    async def _decode(self, audio: np.ndarray, end: int) -> list[Word]:
        """Words of ``audio`` (from the tail's start to absolute sample ``end``) that follow
        the committed ones."""
        offset = self._tail_start / SAMPLE_RATE
        self._decoded_until = end
        prompt = "".join(w.text for w in self._recent if w.end <= offset)
        words = await self._worker.transcribe(
            audio, prompt=prompt, window_s=self._cfg.encoder_window_s
        )
        # Punctuation Whisper emits as a word of its own carries no agreement signal
        # and, decoded from silence, repeats (". . . .").
        absolute = [
            Word(w.start + offset, w.end + offset, w.text) for w in words if word_key(w.text)
        ]
        return beyond_committed(absolute, self._recent)

    def _committable(self, words: Sequence[Word], agreed: int) -> int:
        """How many leading words of a decode to commit, ``agreed`` of them matching the last."""
        edge = self._decoded_until / SAMPLE_RATE
        for count in range(agreed, 0, -1):
            last = words[count - 1]
            if ends_sentence(last) and last.end <= edge - SENTENCE_LOOKAHEAD_S:
                return count
        if edge - self._tail_start / SAMPLE_RATE <= UNSETTLED_TAIL_S:
            return 0
        while agreed and words[agreed - 1].end > edge - COMMIT_MARGIN_S:
            agreed -= 1
        return agreed

    def _commit_hypothesis(self, end: int) -> None:
        """Take the last decode as final up to absolute sample ``end``."""
        self._commit([w for w in self._hypothesis if w.start < end / SAMPLE_RATE])
        self._hypothesis = []

    def _commit(self, words: Sequence[Word]) -> None:
        for word in words:
            self._text += word.text
            self._recent.append(word)

    def _bound_tail(self) -> None:
        """Cut committed audio off the tail, so decode cost stays bounded."""
        tail_start_s = self._tail_start / SAMPLE_RATE
        # Seams after committed words whose next word is known (committed or not).
        known = [*self._recent, *self._hypothesis[:1]]
        seams = [(w, after) for w, after in itertools.pairwise(known) if w.end > tail_start_s]
        sentence_seams = [seam for seam in seams if ends_sentence(seam[0])]
        if len(sentence_seams) > CONTEXT_SENTENCES:
            self._cut_between(*sentence_seams[-1 - CONTEXT_SENTENCES])
        elif self._tail.size > TRIM_TAIL_S * SAMPLE_RATE and seams:
            self._cut_between(*seams[-1])
        if self._tail.size > HARD_TAIL_S * SAMPLE_RATE:
            keep_from = (self._tail_start + self._tail.size) / SAMPLE_RATE - KEEP_S
            forced = list(itertools.takewhile(lambda w: w.end <= keep_from, self._hypothesis))
            log.info(
                "no agreement in %.1f s of audio: showing %d words as provisional text",
                self._tail.size / SAMPLE_RATE,
                len(forced),
            )
            self._commit(forced)
            self._hypothesis = self._hypothesis[len(forced) :]
            self._cut(round(keep_from * SAMPLE_RATE))

    def _cut_between(self, word: Word, after: Word) -> None:
        """Cut in the middle of the gap between two words, so neither is clipped."""
        self._cut(round((word.end + max(after.start, word.end)) / 2 * SAMPLE_RATE))

    def _cut(self, sample: int) -> None:
        """Drop tail audio before absolute ``sample``."""
        drop = min(max(sample - self._tail_start, 0), self._tail.size)
        self._tail = self._tail[drop:]
        self._tail_start += drop


class PausesOnly:
    """Stands in for ``ProvisionalText`` where no local model runs (``remote_only``): no live
    text while speaking; the session shows the server's text of everything so far at each
    pause instead."""

    def append(self, samples: np.ndarray) -> None:
        """Nothing to decode: the final pass holds the audio."""

    async def update(self, end_sample: int | None = None) -> str | None:
        return None

    def rebase(self, sample: int, text: str) -> str:
        """Nothing held to drop: the server's text is all there is to show."""
        return text
