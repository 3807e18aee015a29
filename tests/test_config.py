"""Configuration loading: file, environment overrides, secrets, and precise error messages."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from v2md.config import MAX_ERRORS_SHOWN, ConfigError, default_config_path, load_config
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


def test_a_list_of_a_million_bad_items_is_one_short_error(tmp_path):
    path = write(tmp_path, "[llm]\nfallback = [" + "1," * 500_000 + "1]\n")  # 1 MB
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    message = str(info.value)
    assert f"{path}:2: [llm.fallback]" in message and "at most 2 items" in message
    assert len(message) < 1000


def test_many_errors_show_a_handful_and_count_the_rest(tmp_path):
    path = write(tmp_path, "".join(f"key{n} = {n}\n" for n in range(20_000)))
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    lines = str(info.value).splitlines()
    assert f"{path}:1: unknown key key0" in lines[1]
    assert len(lines) == 1 + MAX_ERRORS_SHOWN + 1
    assert lines[-1].strip() == f"… and {20_000 - MAX_ERRORS_SHOWN} more errors"


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path):
    path = write(tmp_path, "[llm]\nfallback = [" + "1," * 25_000_000 + "1]\n")  # 50 MB
    with pytest.raises(ConfigError, match="too large for a config file"):
        load_config(path, {})


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 2000 + "]" * 2000,
        "a = " + "{b = " * 2000 + "1" + "}" * 2000,
        "[" + ".".join(["llm"] + ["a"] * 2000) + "]\nx = 1",
    ],
    ids=["arrays", "inline-tables", "table-header"],
)
def test_deep_nesting_is_a_config_error(tmp_path, text):
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(write(tmp_path, text + "\n"), {})


def test_the_daemon_refuses_deep_nesting_with_exit_2_and_no_traceback(tmp_path):
    path = write(tmp_path, "a = " + "[" * 2000 + "]" * 2000 + "\n")
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "v2md.daemon", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "nested too deeply" in done.stderr


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('[whisper]\nengine = "wyoming"\nurl = "http://user:hunter2@host"\n', "hunter2"),
        ('[whisper]\nengine = "openai"\nurl = "ftp://me:hunter2@h"\n', "hunter2"),
        ("[llm.ollama]\nhost = 'http://me:hunter2@h'\nmodel = 3\nkeep_alive = 1\n", "hunter2"),
        ('[whisper]\nmodel = 3\nhotwords = ["sk-proj-Ab3dEf6hIj9kLm"]\n', "Ab3dEf6hIj9kLm"),
        ('[llm.gemini]\nmodel = ["AIzaSyD-12345678901234567890abcdefgh"]\n', "12345678901234"),
        ('[whisper]\ninitial_prompt = ["x9Kq2LmN8vB4pR7tY1wE5zA3sD6fG0hJ"]\n', "x9Kq2LmN"),
        ('[llm.gemini]\npassword = "hunter2"\napi_token = "hunter2"\n', "hunter2"),
        ('V2M = 1\n[llm]\nmy_secret = ["hunter2"]\n', "hunter2"),
        ("[whisper]\nsk-proj-Ab3dEf6hIj9kLmNoPq = 1\n", "Ab3dEf6hIj9kLm"),
        ('[whisper]\n"http://me:hunter2@host" = 1\n', "hunter2"),
        ('["http://me:hunter2@host"]\nx = 1\n', "hunter2"),
    ],
    ids=[
        "wyoming-url",
        "openai-url",
        "ollama-host",
        "sk-key",
        "google-key",
        "bare-key",
        "secret-names",
        "secret-name-list",
        "key-named-like-a-key",
        "key-named-by-a-url",
        "section-named-by-a-url",
    ],
)
def test_the_config_check_echoes_nothing_secret_looking(tmp_path, text, secret):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert secret not in str(info.value)
    assert "invalid configuration" in str(info.value)


def test_an_unknown_name_with_a_newline_stays_on_its_line(tmp_path):
    text = '[whisper]\n"beam\\nINFO v2md: forged" = 1\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    (_, line) = str(info.value).splitlines()
    assert "unknown key beam\\nINFO v2md: forged in [whisper]" in line


def test_ordinary_values_are_still_repeated(tmp_path):
    text = '[whisper]\nmodel = "Systran/faster-whisper-large-v3"\nbeam_size = "wide"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert "'wide'" in str(info.value)
