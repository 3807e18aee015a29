"""Configuration loading: file, environment overrides, secrets, and precise error messages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from v2md.config import ConfigError, default_config_path, load_config
from v2md.languages import validate_language


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_defaults_without_a_file(tmp_path):
    cfg = load_config(None, {"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg.audio.backend == "engine" and cfg.audio.device == "default"
    assert cfg.whisper.model == "tiny.en" and cfg.llm.provider == "none"


def test_default_path_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_config_path() == tmp_path / "v2m" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/is/ignored")
    assert default_config_path() == Path.home() / ".config" / "v2m" / "config.toml"


def test_the_configuration_knows_the_file_it_came_from(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_config(None, {}).path == tmp_path / "v2m" / "config.toml"
    mine = write(tmp_path, "[audio]\n", "mine.toml")
    assert load_config(mine, {}).path == mine


def test_environment_overrides_file_including_nested_tables(tmp_path):
    path = write(tmp_path, '[audio]\ndevice = "hw:1"\n[llm.ollama]\nhost = "http://a:1"\n')
    cfg = load_config(
        path,
        {
            "V2M_AUDIO__REALTIME": "false",
            "V2M_LLM__OLLAMA__HOST": "http://b:2",
            "V2M_LLM__FALLBACK": '["gemini"]',
        },
    )
    assert cfg.audio.device == "hw:1" and cfg.audio.realtime is False
    assert cfg.llm.ollama.host == "http://b:2" and cfg.llm.fallback == ["gemini"]


def test_invalid_value_names_key_value_and_line(tmp_path):
    path = write(tmp_path, '# comment\n[audio]\ndevice = "x"\n\n[whisper]\nbeam_size = 0\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert f"{path}:6" in message and "whisper.beam_size" in message and "0" in message


def test_invalid_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="V2M_VAD__THRESHOLD"):
        load_config(None, {"XDG_CONFIG_HOME": str(tmp_path), "V2M_VAD__THRESHOLD": "loud"})


def test_unknown_keys_and_bad_toml_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key devcie in \[audio\]"):
        load_config(write(tmp_path, '[audio]\ndevcie = "x"\n'), {})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[audio\n"), {})
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml", {})


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        (
            '[audio]\ndevice = "x"\n\n[whisperr]\nmodel = "base"\n',
            4,
            "unknown section [whisperr]; did you mean [whisper]?",
        ),
        (
            "[llm]\ntimeout_s = 5\n[ llm . olama ]\nhost = 'h'\n",
            3,
            "unknown section [llm.olama]; did you mean [llm.ollama]?",
        ),
        (
            '[llm]\n\nprovidr = "ollama"\n',
            3,
            "unknown key providr in [llm]; did you mean provider?",
        ),
        (
            "[vad]\nloudness = 3\n",
            2,
            "unknown key loudness in [vad]; known names: enabled, threshold,",
        ),
    ],
)
def test_an_unknown_name_gives_its_line_and_the_closest_valid_one(tmp_path, text, line, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert f"{path}:{line}: {expected}" in str(info.value)


def test_secret_looking_values_are_never_repeated(tmp_path):
    text = '[gemeni]\napi_key = "sk-111"\n[llm]\napi-key = "sk-222"\n[llm.gemini]\napi_key = 3\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    message = str(info.value)
    assert "[gemeni]" in message and "api-key" in message and "llm.gemini.api_key" in message
    assert "sk-111" not in message and "sk-222" not in message


def test_api_key_from_secrets_file_and_environment(tmp_path, caplog):
    path = write(tmp_path, "")
    secrets = write(tmp_path, "# v2m secrets\nexport GEMINI_API_KEY='from-file'\n", ".env")
    assert load_config(path, {}).llm.gemini.api_key.get_secret_value() == "from-file"
    cfg = load_config(path, {"GEMINI_API_KEY": "from-env"})
    assert cfg.llm.gemini.api_key.get_secret_value() == "from-env"
    assert "from-env" not in repr(cfg)  # SecretStr keeps it out of logs
    assert not caplog.records
    secrets.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_config(path, {})
    assert "readable by others" in caplog.text


def test_config_file_holding_a_key_warns_when_world_readable(tmp_path, caplog):
    path = write(tmp_path, '[llm.gemini]\napi_key = "k"\n')
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        load_config(path, {})
    assert "chmod 600" in caplog.text


def test_language_codes():
    assert validate_language(" DE ") == "de"
    assert validate_language("auto") == "auto"
    with pytest.raises(ValueError, match="unknown language"):
        validate_language("english")
