"""The multilingual extra: Whisper base with no download, and the language it hears.

``model = "base"`` comes from the packages of ``pip install '.[multilingual]'``
(``v2md/asr/packaged.py``); with ``Language = "auto"`` each dictation's language is
detected and shown in ``DetectedLanguage``.
"""

from __future__ import annotations

import pytest
import speech
from harness import assert_eventually, running_daemon

from v2md import INTERFACE
from v2md.asr import models, packaged
from v2md.config import WhisperConfig
from v2md.errors import ModelError

pytestmark = pytest.mark.skipif(
    not packaged.installed(), reason="the multilingual extra is not installed"
)

# Two sentences a language, spoken slowly by espeak-ng's voice for it. Whisper base
# decoded them in one batch without a wrong word (measured, 130 words a minute); at 160,
# and on sentences espeak says worse ("das Wetter schön"), it missed up to half.
SPEECH = {
    "es": "Hoy hace buen tiempo y vamos a caminar por el parque con nuestros amigos. "
    "Después comeremos juntos en un restaurante cerca de la plaza.",
    "de": "Guten Morgen, ich möchte heute eine Nachricht an meine Familie schreiben. "
    "Wir sehen uns am Wochenende in Berlin.",
}
WORDS_PER_MINUTE = 130
MAX_WER = 25.0


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return tmp_path / "data"


def test_base_loads_from_the_packaged_halves_checked_against_upstream(data_home):
    spec = models.resolve(WhisperConfig(model="base", device="cpu"))
    assert (spec.display_name, spec.local) == ("base (bundled)", True)
    model = models.load(spec)
    assert model.model.is_multilingual
    assert sorted(p.name for p in packaged.directory().iterdir()) == sorted(packaged.FILES)
    assert packaged.directory().is_relative_to(data_home)
    listed = {m.name: m for m in models.available()}
    assert listed["base"].multilingual and listed["base"].bundled
    assert not listed["tiny.en"].multilingual


def test_a_damaged_package_is_a_model_error_and_leaves_no_model(data_home, monkeypatch):
    size, _sha = packaged.FILES["model.bin"]
    monkeypatch.setitem(packaged.FILES, "model.bin", (size, "0" * 64))
    with pytest.raises(ModelError, match=r"model\.bin does not match the upstream conversion"):
        packaged.assemble()
    assert not packaged.directory().exists()
    assert [p.name for p in packaged.directory().parent.iterdir()] == []  # nothing half-made


def test_a_data_directory_that_cannot_hold_the_model_is_a_model_error(data_home):
    data_home.parent.mkdir(parents=True, exist_ok=True)
    data_home.write_text("a file where the data directory should be\n")
    with pytest.raises(ModelError, match="cannot join the packaged Whisper base model into"):
        packaged.assemble()


@pytest.mark.slow
@pytest.mark.parametrize("language", ["es", "de"])
async def test_auto_language_dictation_is_transcribed_and_its_language_shown(
    own_bus, tmp_path, language
):
    text = SPEECH[language]
    wav = speech.write_wav(
        tmp_path / "speech.wav",
        speech.speak(text, voice=language, words_per_minute=WORDS_PER_MINUTE),
    )
    settings = {
        "V2M_WHISPER__MODEL": "base",
        "V2M_AUDIO__FILE": str(wav),
        "V2M_AUDIO__REALTIME": "false",
        "HF_HUB_OFFLINE": "1",  # no download: the model is the packaged one
    }
    async with running_daemon(own_bus, tmp_path / "home", **settings) as (daemon, iface, props):
        assert (await props.call_get(INTERFACE, "Model")).value == "base (bundled)"
        assert (await props.call_get(INTERFACE, "Language")).value == "auto"
        finals: list[tuple[str, str]] = []  # (text, DetectedLanguage when it came)
        detected = [""]

        def on_props(interface: str, changed: dict, _invalidated: list) -> None:
            if interface == INTERFACE and "DetectedLanguage" in changed:
                detected[0] = changed["DetectedLanguage"].value

        props.on_properties_changed(on_props)
        iface.on_transcription_updated(
            lambda t, final: finals.append((t, detected[0])) if final else None
        )
        await iface.call_start()
        await assert_eventually(lambda: finals, timeout=120)
        final, language_then = finals[0]
        assert speech.wer(text, final) <= MAX_WER, final
        assert language_then == language
        assert (await props.call_get(INTERFACE, "DetectedLanguage")).value == language
    assert daemon.proc.returncode == 0
