"""Spoken commands and the personal vocabulary (issue 19): command accuracy per language, false
commands on prose, name accuracy before and after AddWord, and what the text shaping adds to
Stop.

Each sentence of ``tests/dictated.py`` is spoken by espeak-ng (its language's voice) and
decoded as TranscribeFile decodes it, without the bus: the real worker (tiny.en with Language
auto for English, as a user has it; the multilingual base with the language set for the
others), told the command words and the user's words by the text rules, then the workflow's
own shaping of final text (``RecordingWorkflow.transcribe_file``: replacements, near misses of
the user's words, spoken commands). The decode before the shaping is kept too, so one decode
says what the rules did.

- Commands: a sentence is exact when the text is what the user should get; carried out when
  every command wrote its mark or break and none was left as words, whatever Whisper made of
  the other words. Prose: a false command is a prose sentence the rules changed.
- Names: the sentences of ``dictated.NAMES`` before and after AddWord of their names; name
  words wrong in Whisper's text (the names in its prompt) and in what the user gets (near
  misses corrected); then the English prose again, the names added: prose the rules changed.
- Stop: ``TextRules.final``, what the workflow runs on the final text at Stop, timed on a
  final text of 60 s of dictation (~150 words, with commands and misheard names) with 0, 20
  and 200 words and 10 replacements in the vocabulary.

    python benchmarks/commands_bench.py [--languages en es de fr it]
        [--parts commands names stop] [--repeats 200] [--whisper beam_size=5 final_model=base]

``--whisper`` sets ``[whisper]`` settings over the bench's (TOML values) for every worker, to
tell the model's share of the misses from the rules' (a wider beam, a larger final model).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import dictated  # noqa: E402
import speech  # noqa: E402

from v2md.asr.models import whole_words  # noqa: E402
from v2md.asr.worker import WhisperWorker  # noqa: E402
from v2md.config import CommandsConfig, Config, WhisperConfig  # noqa: E402
from v2md.parts import Events, Features  # noqa: E402
from v2md.text import TextRules  # noqa: E402
from v2md.text.nearmiss import Lexicon  # noqa: E402
from v2md.text.vocabulary import FILE_NAME, Vocabulary  # noqa: E402
from v2md.workflow import RecordingWorkflow  # noqa: E402

MODELS = {"en": ("tiny.en", "auto")}  # the others: base, with their language set
# Near misses tiny.en wrote for the names (tests/test_vocabulary_live.py), for the Stop text.
MISHEARD = {"Zorblax": "Norblax", "Quintaro": "Quinn Taro", "Velmira": "Melmira"}
MISHEARD |= {"Kubrexa": "Calibrexa", "Snarkplex": "Sarkplex", "Yselda Vorhaus": "warehouse"}
REPLACEMENTS = (
    ("work hard", "work smart"),
    ("the meeting", "the stand-up"),
    ("finance team", "FinOps team"),
    ("vee two em", "v2m"),
    ("quarterly report", "Q3 report"),
    ("pull request", "PR"),
    ("kubernetes", "Kubernetes"),
    ("see you soon", "talk soon"),
    ("github", "GitHub"),
    ("new york", "NYC"),
)


class Heard:
    """The worker as the workflow sees it, keeping the text it decoded before the shaping."""

    def __init__(self, worker: WhisperWorker) -> None:
        self.worker = worker
        self.raw = ""

    @property
    def language(self) -> str:
        return self.worker.language

    async def transcribe_file(
        self, path: str, on_progress: Callable[[float], None] | None = None
    ) -> str:
        self.raw = (await self.worker.transcribe_file(path, on_progress)).strip()
        return self.raw


@dataclass
class Parts:
    workflow: RecordingWorkflow
    heard: Heard
    rules: TextRules
    settings: str  # the --whisper settings, as the report names them

    def model(self) -> str:
        """The worker's models, language and settings."""
        worker = self.heard.worker
        return f"{worker.model_name}, Language {worker.language}{self.settings}"

    async def decode(self, wav: Path) -> tuple[str, str]:
        """(the text the user gets, Whisper's text before the shaping)."""
        shaped = await self.workflow.transcribe_file(str(wav))
        return shaped, self.heard.raw


@contextlib.asynccontextmanager
async def daemon_parts(
    model: str, language: str, home: Path, whisper: dict[str, Any]
) -> AsyncIterator[Parts]:
    """The worker, text rules and workflow wired as ``daemon._build_features`` wires them,
    with an empty vocabulary and the package's command tables; ``whisper``: settings over
    ``model`` and ``language``."""
    cfg = Config(whisper=WhisperConfig(**{"model": model, "language": language, **whisper}))
    vocabulary = Vocabulary(home / "data" / FILE_NAME)
    rules = TextRules(cfg.commands, home / "config", vocabulary, Lexicon.of(whole_words()))
    events = Events()
    worker = WhisperWorker(cfg.whisper, on_language=events.language_detected, bias=rules.prompt)
    if worker.english_only:
        rules.language_heard("en")  # as the daemon does: commands from the first decode
    heard = Heard(worker)

    def no_dictation(_events: object) -> None:
        raise RuntimeError("the bench decodes files only")

    features = Features(worker=heard, open_session=no_dictation, text=rules)  # type: ignore[arg-type]
    await worker.load()
    try:
        settings = "".join(f", {name} = {value!r}" for name, value in whisper.items())
        yield Parts(RecordingWorkflow(cfg, features, events), heard, rules, settings)
    finally:
        await worker.close()


def spoken(said: str, language: str, wav: Path) -> Path:
    speech.speak(
        said,
        voice=dictated.VOICES[language],
        words_per_minute=dictated.WORDS_PER_MINUTE[language],
        path=wav,
    )
    return wav


@dataclass
class Commands:
    language: str
    model: str  # the worker's models and language
    sentences: int
    exact: int
    carried_out: int
    prose: int
    false_commands: int  # prose sentences the rules changed
    prose_word_decoded: int  # prose decodes that hold the command word
    wer: float  # word errors of the command sentences, punctuation aside (%)
    report: list[str]


@dataclass
class Names:
    name_words: int
    sentences: int
    before: tuple[float, int]  # name words wrong (%), sentences with every name right
    whisper_after: tuple[float, int]
    after: tuple[float, int]
    names_where_not_said: int
    prose: int
    prose_changed: int
    report: list[str]


@dataclass
class Stop:
    words: int
    replacements: int
    first_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    exact_p50_ms: float  # without the near-miss search


async def prose_changed(parts: Parts, language: str, folder: Path) -> tuple[int, int, list[str]]:
    """Prose sentences the rules changed, those whose decode holds the command word, and
    the report lines."""
    changed = kept = 0
    lines = []
    for n, (said, word) in enumerate(dictated.PROSE_BY_LANGUAGE[language]):
        shaped, raw = await parts.decode(spoken(said, language, folder / f"prose{n}.wav"))
        changed += shaped != raw
        kept += word.casefold() in raw.casefold()
        lines.append(f"{'CHANGED' if shaped != raw else 'same   '} {raw!r} -> {shaped!r}")
    return changed, kept, lines


async def command_accuracy(parts: Parts, language: str, folder: Path) -> Commands:
    """Exact texts and commands carried out on the language's command sentences; false
    commands on its prose."""
    folder.mkdir()
    pairs, heard = [], []
    for n, (said, want) in enumerate(dictated.COMMANDS_BY_LANGUAGE[language]):
        shaped, raw = await parts.decode(spoken(said, language, folder / f"command{n}.wav"))
        pairs.append((want, shaped))
        heard.append(raw)
    done = [dictated.carried_out(got, want, language) for want, got in pairs]
    lines = [
        f"{'ok ' if got == want else 'cmd' if ok else 'BAD'} {want!r} <- {got!r} <- {raw!r}"
        for (want, got), ok, raw in zip(pairs, done, heard, strict=True)
    ]
    changed, kept, prose_lines = await prose_changed(parts, language, folder)
    words = [len(speech.normalise(want)) for want, _got in pairs]
    errors = sum(speech.wer(want, got) * n for (want, got), n in zip(pairs, words, strict=True))
    return Commands(
        language,
        parts.model(),
        len(pairs),
        sum(got == want for want, got in pairs),
        sum(done),
        len(dictated.PROSE_BY_LANGUAGE[language]),
        changed,
        kept,
        errors / sum(words),
        lines + prose_lines,
    )


def names_right(texts: list[str]) -> tuple[float, int]:
    """Name words wrong (%), and sentences with every name spelled right."""
    pairs = zip(dictated.NAMES, texts, strict=True)
    right = sum(dictated.name_errors(name, text) == 0 for (_said, name), text in pairs)
    return dictated.name_error_rate(texts), right


async def name_accuracy(parts: Parts, folder: Path) -> Names:
    """Name words wrong before and after AddWord of each name (English, tiny.en); then the
    English prose decoded again with the names in the vocabulary."""
    folder.mkdir()
    names = dictated.NAMES
    wavs = [spoken(said, "en", folder / f"name{n}.wav") for n, (said, _) in enumerate(names)]
    before = [(await parts.decode(wav))[0] for wav in wavs]
    for _said, name in names:
        parts.workflow.vocabulary.add_word(name)  # what the service's AddWord calls
    after = [await parts.decode(wav) for wav in wavs]
    shaped, raw = [s for s, _r in after], [r for _s, r in after]
    misplaced = sum(
        bool({w for _s, other in names if other != name for w in other.split()} & set(t.split()))
        for (_said, name), t in zip(names, shaped, strict=True)
    )
    changed, _kept, prose_lines = await prose_changed(parts, "en", folder)
    report = [f"{b!r} -> {r!r} -> {s!r}" for b, r, s in zip(before, raw, shaped, strict=True)]
    return Names(
        sum(len(name.split()) for _s, name in names),
        len(names),
        names_right(before),
        names_right(raw),
        names_right(shaped),
        misplaced,
        len(dictated.PROSE),
        changed,
        report + prose_lines,
    )


def made_up_words(count: int) -> list[str]:
    """``count`` names and jargon like a user's: made-up words, one in four of two words."""
    syllables = "zor blax quin ta ro vel mi ra dros kov ku bre xa snar plex flu tron gra vi mond"
    pieces = syllables.split()
    rng = random.Random(19)
    words: dict[str, str] = {}
    while len(words) < count:
        word = " ".join(
            "".join(rng.choice(pieces) for _ in range(rng.randint(2, 3))).capitalize()
            for _ in range(2 if rng.random() < 0.25 else 1)
        )
        words.setdefault(word.casefold(), word)
    return list(words.values())


def dictation_text(words: int = 150) -> str:
    """A final text as Whisper writes 60 s of dictation: the English command sentences with
    their command words set off by commas, and the names sentences as Whisper misheard them."""
    names = []
    for said, _name in dictated.NAMES:
        for right, wrong in MISHEARD.items():
            said = said.replace(right, wrong)
        names.append(said)
    sentences = [said for said, _ in dictated.COMMANDS]
    text: list[str] = []
    for n in range(len(sentences)):
        text.append(sentences[n])
        if n % 3 == 2:
            text.append(names[(n // 3) % len(names)])
        if sum(len(s.split()) for s in text) >= words:
            break
    return " ".join(text)


def timed(rules: TextRules, text: str, repeats: int) -> list[float]:
    """Milliseconds of each of ``repeats`` + 1 calls of ``rules.final`` on ``text``."""
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter_ns()
        rules.final(text, "auto")
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def stop_latency(folder: Path, repeats: int) -> list[Stop]:
    """``TextRules.final`` on the Stop text (ms): the first call, which loads the command
    table, then p50 / p95 / max over ``repeats``; and p50 without the near-miss search (no
    lexicon: the exact rules alone)."""
    text = dictation_text()
    lexicon = Lexicon.of(whole_words())
    rows = []
    for words, replacements in ((0, 0), (0, 10), (20, 10), (200, 10)):
        home = folder / f"stop-{words}-{replacements}"
        home.mkdir()
        chosen = ([name for _s, name in dictated.NAMES] + made_up_words(words))[:words]
        data = {"words": chosen, "replacements": [list(r) for r in REPLACEMENTS[:replacements]]}
        (home / FILE_NAME).write_text(json.dumps(data), encoding="utf-8")
        vocabulary = Vocabulary(home / FILE_NAME)
        rules = TextRules(CommandsConfig(), home, vocabulary, lexicon)
        exact = TextRules(CommandsConfig(), home, vocabulary, Lexicon())
        for each in (rules, exact):
            each.language_heard("en")
        times = timed(rules, text, repeats)
        rest = sorted(times[1:])
        p95 = rest[min(len(rest) - 1, round(0.95 * len(rest)))]
        exact_p50 = statistics.median(timed(exact, text, repeats)[1:])
        rows.append(
            Stop(words, replacements, times[0], statistics.median(rest), p95, rest[-1], exact_p50)
        )
    return rows


def percent(part: int, whole: int) -> str:
    return f"{part} / {whole} ({100 * part / whole:.0f} %)"


def print_commands(rows: list[Commands]) -> None:
    print(
        "| language | model | commands exact | commands carried out | word errors "
        "| prose: false commands |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.language} | {r.model} | {percent(r.exact, r.sentences)} "
            f"| {percent(r.carried_out, r.sentences)} | {r.wer:.0f} % "
            f"| {r.false_commands} of {r.prose} "
            f"(the command word decoded in {r.prose_word_decoded}) |"
        )


def print_names(r: Names) -> None:
    print("| names | name words wrong | sentences with every name right |")
    print("|---|---|---|")
    for label, (rate, right) in (
        ("before AddWord", r.before),
        ("after: Whisper's text, the names in its prompt", r.whisper_after),
        ("after: near misses corrected (what the user gets)", r.after),
    ):
        print(f"| {label} | {rate:.0f} % of {r.name_words} | {right} of {r.sentences} |")
    print(
        f"\nnames written where another was said: {r.names_where_not_said} of {r.sentences}; "
        f"English prose the rules changed with the names added: {r.prose_changed} of {r.prose}"
    )


def print_stop(rows: list[Stop], repeats: int, text: str) -> None:
    print(f"Stop text: {len(text.split())} words, {len(text)} characters; {repeats} repeats")
    print("| vocabulary | first call | p50 | p95 | max | p50 without near misses |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.words} words, {r.replacements} replacements | {r.first_ms:.2f} ms "
            f"| {r.p50_ms:.2f} ms | {r.p95_ms:.2f} ms | {r.max_ms:.2f} ms "
            f"| {r.exact_p50_ms:.2f} ms |"
        )


async def run(args: argparse.Namespace, folder: Path) -> None:
    commands: list[Commands] = []
    names: Names | None = None
    others = [code for code in args.languages if code != "en"]
    if "en" in args.languages and {"commands", "names"} & set(args.parts):
        async with daemon_parts(*MODELS["en"], folder / "en", dict(args.whisper)) as parts:
            if "commands" in args.parts:
                commands.append(await command_accuracy(parts, "en", folder / "en-said"))
            if "names" in args.parts:
                names = await name_accuracy(parts, folder / "names")
    if others and "commands" in args.parts:
        async with daemon_parts("base", others[0], folder / "base", dict(args.whisper)) as parts:
            for code in others:
                parts.heard.worker.language = code  # what SetLanguage does
                commands.append(await command_accuracy(parts, code, folder / f"{code}-said"))
    stop = stop_latency(folder, args.repeats) if "stop" in args.parts else []
    for r in commands:
        print(f"\n{r.language}:", *r.report, sep="\n  ")
    if names is not None:
        print("\nnames (before -> Whisper's after -> after), then English prose with the names:")
        print(*names.report, sep="\n  ")
    print(f"\n{now()}, load {load()} after\n")
    if commands:
        print_commands(commands)
    if names is not None:
        print()
        print_names(names)
    if stop:
        print()
        print_stop(stop, args.repeats, dictation_text())


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def setting(text: str) -> tuple[str, Any]:
    """``beam_size=5`` as ("beam_size", 5): the value as TOML, else a string."""
    name, _, value = text.partition("=")
    try:
        return name, tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", nargs="*", default=["en", "es", "de", "fr", "it"])
    parts = ["commands", "names", "stop"]
    parser.add_argument("--parts", nargs="*", default=parts, choices=parts)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--whisper", nargs="*", default=[], type=setting, metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"{now()}, load {load()} before")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
