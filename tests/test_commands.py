"""Spoken commands and punctuation as pure text rules (``v2md/text/commands.py``).

Inputs are written the way Whisper writes dictated commands: set off by the
punctuation it uses for the speaker's pauses. The prose corpus holds every
English command word used as a word; none of it may change.
"""

from __future__ import annotations

import pytest

from v2md.asr.models import whole_words
from v2md.config import CommandsConfig
from v2md.errors import InvalidArgumentError
from v2md.text import TextRules
from v2md.text.commands import PACKAGE_TABLES, Tables, apply, load_table
from v2md.text.nearmiss import Lexicon
from v2md.text.vocabulary import Vocabulary

LANGUAGES = ("en", "es", "de", "fr", "it")

DICTATED = {
    "Thanks, comma, see you on Monday, period.": "Thanks, see you on Monday.",
    "is the meeting at noon? Question mark.": "is the meeting at noon?",
    "He said, open quote, hello, close quote, and left, period.": "He said “hello” and left.",
    "Dear Anna, new paragraph, the results are in, period.": "Dear Anna,\n\nThe results are in.",
    "We won, exclamation mark, new line, it was close, full stop.": "We won!\nIt was close.",
    "Bring apples, semicolon, pears, open bracket, ripe, close bracket, and plums, period.": (
        "Bring apples; pears (ripe) and plums."
    ),
    "Note, colon, call Bob. Period.": "Note: call Bob.",
    "Send it. New paragraph. Thanks.": "Send it.\n\nThanks.",
    "Monday, period": "Monday.",
    "New paragraph, dear Anna": "\n\nDear Anna",
    "Write the word literal period here.": "Write the word period here.",
}

SCRATCHED = {
    "I will be late, scratch that, I will be early, period.": "I will be early.",
    "The plan is set. I will be late. Scratch that. I will be early.": (
        "The plan is set. I will be early."
    ),
    "Call me, period, delete that, new line, text me, period.": "\nText me.",
}

# Every English command word as an ordinary word.
PROSE = (
    "The trial period ends on Friday.",
    "Please use a comma-separated list.",
    "He came to a full stop at the light.",
    "Each period of the game lasts twenty minutes.",
    "After a short period, we left.",
    "She put a comma after the greeting.",
    "The new line of products launches in May.",
    "A colon is a punctuation mark.",
    "There is a question mark over his future.",
    "Every new paragraph should start with a topic sentence.",
    "Quote the source and close the bracket before the period.",
    "The colon and the semicolon look alike.",
    "They scratch that itch with a new line of code.",
    "An open quote needs a close quote.",
    "That period was the happiest of my life.",
    "The exclamation mark is overused.",
    "We talked about the trial period.",
    "Semicolon use is rare.",
    "Period.",
)


@pytest.fixture(scope="module")
def en():
    return load_table("en")


@pytest.mark.parametrize(("said", "written"), DICTATED.items())
def test_commands_said_with_a_pause_become_punctuation(en, said, written):
    assert apply(said, en) == written


@pytest.mark.parametrize(("said", "written"), SCRATCHED.items())
def test_scratch_that_drops_the_sentence_before_it_and_keeps_the_rest(en, said, written):
    assert apply(said, en) == written


@pytest.mark.parametrize("prose", PROSE)
def test_command_words_in_prose_stay_words(en, prose):
    assert apply(prose, en) == prose


@pytest.fixture(scope="module")
def lexicon():
    return Lexicon.of(whole_words())


# Commands Whisper misheard, set off by the pauses around them.
MISHEARD = {
    "We won, andclamation mark.": "We won!",
    "Let me think, peer it.": "Let me think.",
    "Yes, semicolin, no.": "Yes; no.",
    "Hello, new lion, John.": "Hello,\nJohn.",
    "Go home, scratch dat, stay.": "Stay.",
    "He said, open quotes, hi, close quotes, and left.": "He said “hi” and left.",
}

# Near misses of command words, where they are not one.
NOT_COMMANDS = (
    "Thanks, Colin.",  # a word the model writes whole
    "Karma, he said.",
    "The trial peer it ends.",  # no pause around it
    "Peer it, the fence.",  # a command's near miss at the start, where none goes
    "Yes, colonel.",
)


@pytest.mark.parametrize(("said", "written"), MISHEARD.items())
def test_near_misses_of_commands_set_off_by_pauses_are_commands(en, lexicon, said, written):
    assert apply(said, en, lexicon) == written
    assert apply(said, en) == said  # without the model's words, exact phrases only


@pytest.mark.parametrize("text", NOT_COMMANDS + PROSE)
def test_near_misses_elsewhere_are_words(en, lexicon, text):
    assert apply(text, en, lexicon) == text


# Whisper's sentence end for the pause after a command, and its capital on the next word.
ENDED_AT_A_COMMAND = {
    "Our budget, open bracket. For this year, close bracket, is fixed, period.": (
        "Our budget (for this year) is fixed."
    ),
    "The door is open, semicolon. Come in, period.": "The door is open; come in.",
    "Meet me, colon. Monday at noon, period.": "Meet me: Monday at noon.",  # a name's capital
    "Note, colon. I will call, period.": "Note: I will call.",
    "Done, period. The rest waits, period.": "Done. The rest waits.",  # a sentence's
}


@pytest.mark.parametrize(("said", "written"), ENDED_AT_A_COMMAND.items())
def test_a_capital_whisper_wrote_after_a_sentence_end_a_command_replaced_goes(
    en, lexicon, said, written
):
    assert apply(said, en, lexicon) == written


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("de", "Wir planen, ein neuer Absatz, im Text."),
        ("it", "Scrivo, un nuovo paragrafo, domani."),
    ],
)
def test_an_article_before_a_near_miss_keeps_it_words(lexicon, language, text):
    assert apply(text, load_table(language), lexicon) == text


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_kind_of_command(language):
    table = load_table(language)
    kinds = {c.kind for same in table.commands.values() for c in same}
    assert len(kinds) == 4 and table.prompt and table.literal and table.words_before


@pytest.mark.parametrize(
    ("language", "said", "written"),
    [
        (
            "es",
            "Hola, coma, ¿vienes mañana, signo de interrogación, nueva línea, adiós, punto.",
            "Hola, ¿vienes mañana?\nAdiós.",
        ),
        ("es", "Es mi punto de vista.", "Es mi punto de vista."),
        (
            "de",
            "Hallo, Komma, wie geht es dir, Fragezeichen, neuer Absatz, bis bald, Punkt.",
            "Hallo, wie geht es dir?\n\nBis bald.",
        ),
        ("de", "Wir kommen auf den Punkt.", "Wir kommen auf den Punkt."),
        (
            "fr",
            "Tu viens, point d'interrogation, ouvrez les guillemets, oui, fermez les "
            "guillemets, point.",
            "Tu viens\u202f? «\u202fOui\u202f».",
        ),
        ("fr", "Le point de vue est clair.", "Le point de vue est clair."),
        (
            "it",
            "Ciao, virgola, come stai, punto interrogativo, a capo, a presto, punto.",
            "Ciao, come stai?\nA presto.",
        ),
        ("it", "Il punto di vista conta.", "Il punto di vista conta."),
    ],
)
def test_other_languages(language, said, written):
    assert apply(said, load_table(language)) == written


@pytest.mark.parametrize(
    ("language", "said", "written"),
    [
        (
            "es",
            "Abrir interrogación, dónde está la estación, cierra interrogación.",
            "¿Dónde está la estación?",
        ),
        ("es", "Hola, punto, abrir exclamación, qué bien, cierra exclamación.", "Hola. ¡Qué bien!"),
        # Whisper wrote the mark as well as the words for it
        ("es", "Abrir interrogación, ¿dónde está?", "¿Dónde está?"),
        ("en", "Done, new line, open quote, yes, close quote.", "Done,\n“Yes”"),
        ("en", "He said, open quote, hello, close quote.", "He said “hello”"),
    ],
)
def test_an_opening_mark_that_starts_a_sentence_capitalises_the_word_after(language, said, written):
    assert apply(said, load_table(language)) == written


def test_a_user_table_adds_replaces_and_removes_commands(tmp_path):
    user = tmp_path / "commands"
    user.mkdir()
    (user / "en.toml").write_text(
        'scratch = ["undo that"]\n[punctuation]\n"dot" = "."\n"comma" = ""\n'
        '[layout]\n"new line" = " / "\n'
    )
    table = load_table("en", user)
    assert apply("Go home, dot, undo that, stay, comma, here.", table) == "Stay, comma, here."
    assert apply("Yes new line, two", table) == "Yes / Two"
    assert apply("Done, period.", table) == "Done."  # the rest of the built-in table stays


def test_a_language_of_the_users_own(tmp_path):
    (tmp_path / "nl.toml").write_text('[punctuation]\n"komma" = ","\n')
    assert apply("Hallo, komma, daar.", load_table("nl", tmp_path)) == "Hallo, daar."
    assert load_table("pt", tmp_path) is None


@pytest.mark.parametrize(
    "content", ["[punctuation\n", '[punctuation]\n"x" = 1\n', "bogus = 1\n", "\xff"]
)
def test_a_broken_user_table_is_an_invalid_argument_naming_the_file(tmp_path, content):
    (tmp_path / "en.toml").write_bytes(content.encode("latin-1"))
    with pytest.raises(InvalidArgumentError, match=r"en\.toml"):
        load_table("en", tmp_path)


def test_an_edited_user_table_applies_without_a_restart_and_a_broken_one_falls_back(tmp_path):
    tables = Tables(tmp_path)
    assert apply("Yes, dot.", tables.get("en")) == "Yes, dot."
    (tmp_path / "en.toml").write_text('[punctuation]\n"dot" = "."\n')
    assert apply("Yes, dot.", tables.get("en")) == "Yes."
    (tmp_path / "en.toml").write_text("[broken\n")
    assert apply("Yes, period.", tables.get("en")) == "Yes."


def test_disabled_commands_leave_text_and_prompt_alone(tmp_path):
    on = TextRules(CommandsConfig(), tmp_path, Vocabulary(tmp_path / "v.json"))
    off = TextRules(CommandsConfig(enabled=False), tmp_path, Vocabulary(tmp_path / "v.json"))
    assert on.final("Yes, period.", "en") == "Yes." and on.prompt("en")
    assert off.final("Yes, period.", "en") == "Yes, period." and not off.prompt("en")


def test_replacements_come_before_commands_and_words_join_the_prompt(tmp_path):
    vocabulary = Vocabulary(tmp_path / "v.json")
    rules = TextRules(CommandsConfig(enabled=False), tmp_path, vocabulary)
    vocabulary.add_word("Zorblax Quintaro")
    vocabulary.set_replacement("full stop", "period")
    assert rules.prompt("en") == "Zorblax Quintaro."
    assert rules.final("Stop, full stop.", "en") == "Stop, period."
    rules = TextRules(CommandsConfig(), tmp_path, vocabulary)
    assert rules.prompt("en") == load_table("en").prompt + " Zorblax Quintaro."
    assert rules.final("Stop, full stop.", "en") == "Stop."


def test_with_language_auto_the_language_last_heard_is_used(tmp_path):
    rules = TextRules(CommandsConfig(), tmp_path, Vocabulary(tmp_path / "v.json"))
    assert rules.final("Hola, punto.", "auto") == "Hola, punto."  # nothing heard yet
    rules.language_heard("es")
    assert rules.final("Hola, punto.", "auto") == "Hola."
    assert rules.prompt("auto") == load_table("es").prompt


def test_the_package_ships_exactly_the_tables_tested():
    assert sorted(p.stem for p in PACKAGE_TABLES.glob("*.toml")) == sorted(LANGUAGES)
