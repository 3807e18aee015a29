"""The personal vocabulary (``v2md/text/vocabulary.py``): limits, storage, replacements."""

from __future__ import annotations

import json

import pytest

from v2md.asr.models import whole_words
from v2md.errors import InvalidArgumentError, StorageError
from v2md.llm.prompts import refine_prompt
from v2md.text.nearmiss import Lexicon
from v2md.text.vocabulary import MAX_WORDS, PROMPT_CHARS, Vocabulary


@pytest.fixture
def vocab(tmp_path):
    return Vocabulary(tmp_path / "v2m" / "vocabulary.json")


def test_words_are_kept_on_disk_once_each_and_removed_in_any_case(vocab):
    vocab.add_word("Zorblax")
    vocab.add_word("  Quintaro ")
    vocab.add_word("ZORBLAX")  # the same word: one copy, the new spelling
    assert vocab.words == ["ZORBLAX", "Quintaro"]
    assert Vocabulary(vocab.path).words == ["ZORBLAX", "Quintaro"]
    vocab.remove_word("zorblax")
    assert Vocabulary(vocab.path).words == ["Quintaro"]
    with pytest.raises(InvalidArgumentError, match="not in the vocabulary"):
        vocab.remove_word("Zorblax")


@pytest.mark.parametrize(
    ("word", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 10_000, "10000 characters"),
        ("a\tb", "control"),
        ("a\x00b", "control"),
        ("a\u200bb", "control"),
    ],
)
def test_bad_words_and_phrases_are_named_errors(vocab, word, match):
    with pytest.raises(InvalidArgumentError, match=match):
        vocab.add_word(word)
    with pytest.raises(InvalidArgumentError, match=match):
        vocab.set_replacement(word, "x")
    with pytest.raises(InvalidArgumentError, match=match):
        vocab.set_replacement("x", word)
    assert vocab.words == [] and vocab.replacements == []


def test_the_word_count_is_limited(vocab):
    for n in range(MAX_WORDS):
        vocab.add_word(f"w{n}")
    with pytest.raises(InvalidArgumentError, match=f"{MAX_WORDS} words"):
        vocab.add_word("one more")
    vocab.add_word("W1")  # changing the spelling of one is fine
    # The prompt holds the newest words that fit, in order.
    prompt = vocab.prompt()
    assert len(prompt) <= PROMPT_CHARS + 1 and prompt.endswith(f"w{MAX_WORDS - 1}.")


@pytest.mark.parametrize(
    ("text", "replaced"),
    [
        ("Ask vee two em about it.", "Ask v2m about it."),
        ("VEE  TWO\nEM works", "v2m works"),  # any case, any spaces between its words
        ("veetwo em and vee twoem stay", "veetwo em and vee twoem stay"),  # whole words only
        ("The kube cuddle tool", "The kubectl tool"),
        ("kube cuddle vee two em", "kubectl v2m"),
        ("k8s is k8s", "Kubernetes is Kubernetes"),
    ],
)
def test_replacements_are_exact(vocab, text, replaced):
    vocab.set_replacement("vee two em", "v2m")
    vocab.set_replacement("Kube Cuddle", "kubectl")
    vocab.set_replacement("k8s", "Kubernetes")
    vocab.set_replacement("Kubernetes", "never applied twice")
    assert vocab.replace(text) == replaced


def test_replacements_are_stored_set_again_and_removed(vocab):
    vocab.set_replacement("vee two em", "v2m")
    vocab.set_replacement("Vee Two Em", "V2M")
    assert Vocabulary(vocab.path).replacements == [("Vee Two Em", "V2M")]
    vocab.remove_replacement("VEE TWO EM")
    assert Vocabulary(vocab.path).replacements == []
    with pytest.raises(InvalidArgumentError, match="no replacement"):
        vocab.remove_replacement("vee two em")


def test_a_broken_file_is_moved_aside_not_lost(tmp_path):
    path = tmp_path / "vocabulary.json"
    path.write_text("{not json")
    vocab = Vocabulary(path)
    assert vocab.words == []
    assert (tmp_path / "vocabulary.json.broken").read_text() == "{not json"
    vocab.add_word("Zorblax")
    assert json.loads(path.read_text())["words"] == ["Zorblax"]


def test_a_file_that_cannot_be_written_is_a_storage_error(tmp_path):
    (tmp_path / "v2m").write_text("a file where the directory should be")
    vocab = Vocabulary(tmp_path / "v2m" / "vocabulary.json")
    with pytest.raises(StorageError, match="cannot write"):
        vocab.add_word("Zorblax")


def test_refine_is_told_the_words(tmp_path):
    system = refine_prompt("text", tmp_path, ["Zorblax", "Quintaro"]).system
    assert system.endswith(
        "Glossary: spell these names and terms exactly so:\n- Zorblax\n- Quintaro"
    )
    assert "Glossary" not in refine_prompt("text", tmp_path).system


@pytest.fixture(scope="module")
def lexicon():
    return Lexicon.of(whole_words())


def test_the_bundled_model_gives_the_common_words(lexicon):
    assert len(lexicon.words) > 20_000
    assert lexicon.common("warehouse") and lexicon.common("Don't") and lexicon.common("Anna's")
    assert not lexicon.common("Norblax") and not lexicon.common("Quinn-Taro")


@pytest.mark.parametrize(
    ("text", "corrected"),
    [
        ("Send it to Norblax.", "Send it to Zorblax."),
        ("Send it to Nordlax, now", "Send it to Zorblax, now"),
        ("ask norblax quintaro first", "ask Zorblax Quintaro first"),  # a word of two
        ("Ask Quinn Taro and Quintero.", "Ask Quintaro and Quintaro."),  # split, one word
        ("Norblax's plan", "Zorblax's plan"),  # a possessive stays
        ("zorblax, said Zorblax.", "Zorblax, said Zorblax."),  # the user's spelling
        ("Melmira Droskov", "Velmira Droskov"),
        ("A Sarkplex deploy", "A Snarkplex deploy"),
        # Common words are words the decoder meant; a longer word holds the word and more.
        ("The warehouse and the colon, at the quint.", None),
        ("The Zorblaxian empire", None),
        ("Norblax. Quintaro", "Zorblax. Quintaro"),  # no run across punctuation
        ("Quinn. Taro", None),
    ],
)
def test_near_misses_of_the_users_words_become_them(vocab, lexicon, text, corrected):
    for word in ("Zorblax Quintaro", "Quintaro", "Velmira Droskov", "Snarkplex", "Colin"):
        vocab.add_word(word)
    vocab.add_word("Vorhaus")
    assert vocab.correct(text, lexicon) == (text if corrected is None else corrected)
    assert vocab.correct(text, Lexicon()) == text  # no common words known: no corrections


def test_short_words_have_no_near_misses(vocab, lexicon):
    vocab.add_word("Zorb")
    assert vocab.correct("Norb and Zorbs", lexicon) == "Norb and Zorbs"
