"""Configuration: one TOML file, environment overrides, strict validation.

Sources, lowest priority first: built-in defaults, ``$XDG_CONFIG_HOME/v2m/config.toml``
(or ``--config PATH``), then ``V2M_<SECTION>__<KEY>`` environment variables.
Every key is validated by pydantic; an invalid value is reported with its key,
value and line in the file, because a daemon that silently ignores a typo is
worse than one that refuses to start.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from v2md.errors import HIDDEN, SHOWN_VALUE, brief, redacted, shown
from v2md.languages import check_language_for_model, validate_language

log = logging.getLogger(__name__)

ENV_PREFIX = "V2M_"
# Beside config.toml: KEY=value lines (GEMINI_API_KEY=...), kept out of the config file.
SECRETS_FILE = ".env"
# What the environment or the secrets file may hold, and the key each one sets.
# A config file is a few kilobytes; anything past this is refused before it is parsed.
MAX_CONFIG_BYTES = 1 << 20
# Errors one message lists; the rest are counted (a list of a million bad items is one
# mistake, not a million lines).
MAX_ERRORS_SHOWN = 5
SECRET_VARIABLES = {
    "GEMINI_API_KEY": ("llm", "gemini", "api_key"),
    "OPENAI_API_KEY": ("whisper", "api_key"),
}


def is_english_only(model: str) -> bool:
    """Whisper's ``*.en`` models (the bundled ``tiny.en`` among them) know English only."""
    return model.strip().rstrip("/").endswith(".en")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AudioConfig(_Section):
    backend: Literal["engine", "sounddevice"] = "engine"
    device: str = "default"
    file: Path | None = Field(default=None, description="read this audio file instead of a device")
    realtime: bool = True
    capacity_s: int = Field(default=660, ge=1, le=6 * 3600)


# The URL schemes each remote engine's url may use.
REMOTE_SCHEMES = {"wyoming": ("tcp", "unix"), "openai": ("http", "https")}


class WhisperConfig(_Section):
    model: str = "tiny.en"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    final_model: str = Field(
        default="",
        description=(
            "the model for final text (a dictation's, and files'); '': the live model. "
            "A second model is loaded beside the live one"
        ),
    )
    cpu_threads: int = Field(default=0, ge=0, le=256)
    beam_size: int = Field(
        default=1,
        ge=1,
        le=16,
        description="beam width of final decodes (a dictation's and files'); live text is greedy",
    )
    parallel_decodes: bool = Field(
        default=True,
        description=(
            "live and final decodes on threads of their own, side by side, so that a "
            "final decode never waits behind a live one"
        ),
    )
    language: str = "auto"
    initial_prompt: str = ""
    hotwords: str = ""
    # Live decodes are most of a dictation's CPU: 1000 ms keeps tiny.en within 0.35 CPU s
    # per audio second on two cores (500 ms: 0.44-0.49; benchmarks/README.md), and each
    # breath's final decode refreshes live text in between.
    update_interval_ms: int = Field(default=1000, ge=50, le=10_000)
    memory_threshold_percent: float = Field(default=90.0, gt=0, le=100)
    idle_unload_s: int = Field(default=0, ge=0)
    max_file_s: int = Field(
        default=4 * 3600, ge=1, description="longest file TranscribeFile accepts, in seconds"
    )
    encoder_window_s: float = Field(
        default=3.0,
        ge=1.0,
        le=30.0,
        description=(
            "shortest encoder window for streaming decodes (each covers its audio plus 2 s); "
            "30 keeps Whisper's full window"
        ),
    )

    engine: Literal["local", "wyoming", "openai"] = Field(
        default="local",
        description=(
            "what decodes the final text: the local model, a Wyoming server or an "
            "OpenAI-compatible server (live text always comes from the local model)"
        ),
    )
    url: str = Field(
        default="",
        description="the server: tcp://host:10300 (Wyoming) or http://host:8000/v1 (OpenAI)",
    )
    api_key: SecretStr | None = None
    remote_model: str = Field(
        default="", description="the model to ask the server for ('': a Wyoming server's own)"
    )
    remote_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="longest wait for the server's answer; then the local model's text is used",
    )
    remote_only: bool = Field(
        default=False, description="load no local model: no live text, final text from the server"
    )

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        return validate_language(v)

    @model_validator(mode="after")
    def _language_fits_model(self) -> WhisperConfig:
        if not self.remote_only:  # the local model's languages matter only when it is loaded
            for model in (self.model, self.final_model):
                if model:
                    check_language_for_model(self.language, english_only=is_english_only(model))
        return self

    @model_validator(mode="after")
    def _server_named(self) -> WhisperConfig:
        if self.engine == "local":
            if self.remote_only:
                raise ValueError("remote_only = true needs engine = 'wyoming' or 'openai'")
            return self
        schemes = REMOTE_SCHEMES[self.engine]
        parts = urlsplit(self.url)
        port_missing = parts.scheme == "tcp" and parts.port is None  # Wyoming has no default
        if parts.scheme not in schemes or not (parts.netloc or parts.path) or port_missing:
            raise ValueError(
                f"engine = {self.engine!r} needs url = '{schemes[0]}://host:port…' "
                f"({' or '.join(s + '://' for s in schemes)}), not {shown(self.url)}"
            )
        if self.engine == "openai" and not self.remote_model:
            raise ValueError(
                "engine = 'openai' needs remote_model, the model the server serves "
                "(e.g. 'whisper-1' on api.openai.com, 'Systran/faster-whisper-large-v3' "
                "on speaches)"
            )
        return self


class VADConfig(_Section):
    enabled: bool = True
    threshold: float = Field(default=0.5, gt=0, lt=1)
    min_speech_ms: int = Field(default=250, ge=0)
    min_silence_ms: int = Field(default=300, ge=0)
    speech_pad_ms: int = Field(default=200, ge=0)
    auto_stop_silence_ms: int = Field(default=0, ge=0, description="0 disables hands-free stop")


class OllamaConfig(_Section):
    host: str = "http://127.0.0.1:11434"
    model: str = "llama3.2"
    keep_alive: str = "5m"
    temperature: float = Field(default=0.2, ge=0, le=2)


class GeminiConfig(_Section):
    model: str = "gemini-2.5-flash"
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_output_tokens: int = Field(default=2048, ge=1)
    api_key: SecretStr | None = None
    base_url: str | None = None


class LLMConfig(_Section):
    provider: Literal["none", "ollama", "gemini"] = "none"
    fallback: list[Literal["ollama", "gemini"]] = Field(default=[], max_length=2)
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff_s: float = Field(
        default=0.5, ge=0, le=60, description="first retry delay; doubles on each further retry"
    )
    max_input_chars: int = Field(default=20_000, ge=1)
    max_output_chars: int = Field(default=100_000, ge=1)
    auto_refine: bool = False
    prompts_dir: Path | None = None
    ollama: OllamaConfig = OllamaConfig()
    gemini: GeminiConfig = GeminiConfig()


class OutputConfig(_Section):
    clipboard: bool = True
    type: bool = False
    paste: bool = False
    session: Literal["auto", "wayland", "x11"] = "auto"
    typing_tool: Literal["auto", "ibus", "portal", "wtype", "ydotool", "xdotool"] = "auto"
    newline: Literal["return", "shift-return", "paste"] = Field(
        default="return",
        description=(
            "how a typed line break reaches the app: Return, Shift+Return (a line break "
            "where Return sends a chat message), or pasted"
        ),
    )


# A trigger as the XDG shortcuts specification spells it (CTRL, ALT, SHIFT, NUM, LOGO,
# then a key name), or "" to leave the choice to the desktop's dialog.
_TRIGGER = re.compile(r"(((CTRL|ALT|SHIFT|NUM|LOGO)\+)*[A-Za-z0-9_]+)?")


class ShortcutsConfig(_Section):
    enabled: bool = Field(
        default=False, description="bind toggle and push-to-talk through the GlobalShortcuts portal"
    )
    toggle: str = "LOGO+v"
    push_to_talk: str = "LOGO+ALT+v"
    push_to_talk_limit_s: float = Field(
        default=300.0, ge=1, le=3600, description="stop a push-to-talk whose release never comes"
    )

    @field_validator("toggle", "push_to_talk")
    @classmethod
    def _trigger(cls, v: str) -> str:
        if not _TRIGGER.fullmatch(v):
            raise ValueError(
                f"not a shortcut trigger: {shown(v)}: join modifiers (CTRL, ALT, SHIFT, NUM, "
                "LOGO) and a key name with '+', as in 'LOGO+ALT+v', or give '' to choose the "
                "key in the desktop's dialog"
            )
        return v


class NotificationsConfig(_Section):
    enabled: bool = True
    expire_ms: int = Field(default=4000, ge=-1)


class HistoryConfig(_Section):
    max_entries: int = Field(default=10_000, ge=1)


class CommandsConfig(_Section):
    enabled: bool = Field(
        default=True, description='spoken punctuation and commands ("comma", "new line", …)'
    )


class Config(_Section):
    audio: AudioConfig = AudioConfig()
    whisper: WhisperConfig = WhisperConfig()
    vad: VADConfig = VADConfig()
    llm: LLMConfig = LLMConfig()
    output: OutputConfig = OutputConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    shortcuts: ShortcutsConfig = ShortcutsConfig()
    history: HistoryConfig = HistoryConfig()
    commands: CommandsConfig = CommandsConfig()

    _path: Path = PrivateAttr(default_factory=lambda: default_config_path())

    @property
    def path(self) -> Path:
        """The file this configuration was read from, or would be: it may not exist."""
        return self._path


class ConfigError(Exception):
    """The configuration cannot be used; the message names key, value and line."""


def xdg_dir(kind: Literal["config", "state", "data", "runtime"]) -> Path:
    """The user's XDG base directory of that kind, with the spec's fallbacks."""
    home = Path.home()
    env, fallback = {
        "config": ("XDG_CONFIG_HOME", home / ".config"),
        "state": ("XDG_STATE_HOME", home / ".local" / "state"),
        "data": ("XDG_DATA_HOME", home / ".local" / "share"),
        "runtime": ("XDG_RUNTIME_DIR", Path("/tmp")),
    }[kind]
    value = os.environ.get(env)
    return Path(value) if value and os.path.isabs(value) else fallback


def default_config_path() -> Path:
    """Where the configuration is read from when ``v2md --config`` does not say."""
    return xdg_dir("config") / "v2m" / "config.toml"


def secrets_path(config_path: Path) -> Path:
    """The secrets file read beside a config file."""
    return config_path.parent / SECRETS_FILE


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """``V2M_LLM__OLLAMA__HOST=x`` becomes ``{"llm": {"ollama": {"host": "x"}}}``."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _parse_env_value(value)
    return tree


def _parse_env_value(value: str) -> Any:
    """Environment values are strings; lists may be given as TOML arrays (``["a","b"]``)."""
    if value.startswith("["):
        try:
            return tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """Line number of the key or table at ``loc`` (e.g. ("llm", "ollama", "host")) in TOML
    text: its ``key =`` line or ``[table]`` header, else the first line of what it holds."""
    target = ".".join(str(p) for p in loc if not isinstance(p, int))
    current = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[") and not line.startswith("[["):
            current = full = _dotted(line[1:].split("]", 1)[0])
        elif "=" in line and not line.startswith("#"):
            name = _dotted(line.split("=", 1)[0])
            full = f"{current}.{name}" if current else name
        else:
            continue
        if full == target or full.startswith(target + "."):
            return number
    return None


def _dotted(name: str) -> str:
    """A TOML key or table name without spaces and quotes: ``"llm" . ollama`` is llm.ollama."""
    return ".".join(part.strip().strip("\"'") for part in name.split("."))


def load_config(path: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load and validate the configuration; raise ConfigError with a precise message."""
    environ = dict(os.environ if environ is None else environ)
    explicit = path is not None
    path = path or default_config_path()
    try:
        return _load(path, explicit, environ)
    except RecursionError:  # the parser, pydantic or a walk over a value nested ~1,000 deep
        raise ConfigError(f"{path}: arrays or tables nested too deeply") from None


def _load(path: Path, explicit: bool, environ: dict[str, str]) -> Config:
    text = ""
    data: dict[str, Any] = {}
    if path.exists():
        text = _read_text(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        _warn_if_secret_readable(path, data)
    elif explicit:
        raise ConfigError(f"{path}: no such config file")
    env = _env_overrides(environ)
    secrets = {**_read_secrets(secrets_path(path)), **environ}
    for variable, key in SECRET_VARIABLES.items():
        if secrets.get(variable):
            value: Any = secrets[variable]
            for part in reversed(key):
                value = {part: value}
            env = _merge(env, value)
    try:
        cfg = Config.model_validate(_merge(data, env))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, text, env)) from None
    cfg._path = path
    return cfg


def _read_text(path: Path) -> str:
    """The config file's text, refused past MAX_CONFIG_BYTES before it is all read."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path}: too large for a config file (over {MAX_CONFIG_BYTES // 1024} KiB)"
            )
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def _describe(exc: ValidationError, path: Path, text: str, env: dict[str, Any]) -> str:
    errors = exc.errors(include_url=False, include_context=False)
    lines = [_describe_one(err, path, text, env) for err in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"… and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _describe_one(err: Any, path: Path, text: str, env: dict[str, Any]) -> str:
    """One error's line: where, the key, its value unless it may be secret, and why."""
    loc = tuple(err["loc"])
    where = _source_of(loc, path, text, env)
    if err["type"] == "extra_forbidden":
        return f"{where}: {_unknown(loc, err.get('input'))}"
    key = ".".join(str(p) for p in loc)
    value = err.get("input")
    # A validator's message may quote what it checked (a URL with its password in it).
    why = redacted(err["msg"])
    if isinstance(value, dict):
        # A whole section failed a check across its keys (the message names them); its
        # values are not repeated: the section may hold an API key.
        return f"{where}: [{key}]: {why}"
    value_text = HIDDEN if any(_looks_secret(str(p)) for p in loc) else shown(value)
    return f"{where}: [{key}] = {value_text}: {why}"


def _unknown(loc: tuple[Any, ...], value: Any) -> str:
    """An unknown key or section named with the closest valid name. Its value is not
    repeated: a misspelt section or key may hold an API key. Nor is its name as written
    when it looks secret (an API key or a URL with a password pasted as a key), and a
    control character in it is escaped: the message is one line per error."""
    *parents, name = [str(p) for p in loc]
    written = _as_written(name)
    section: Any = Config
    for part in parents:
        section = section.model_fields[part].annotation
    valid = list(section.model_fields)
    table = isinstance(value, dict)

    def shown(n: str) -> str:
        """A table as its header is written ([llm.ollama]); a key as the line starts."""
        return "[" + ".".join([*parents, n]) + "]" if table else n

    within = f" in [{'.'.join(parents)}]" if parents and not table else ""
    what = f"{'section' if table else 'key'} {shown(written)}{within}"
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean {shown(close[0])}?" if close else f"known names: {', '.join(valid)}"
    return f"unknown {what}; {hint}"


def _as_written(name: str) -> str:
    """A key's name as an error repeats it: secret-looking parts hidden, control
    characters escaped, cut to SHOWN_VALUE."""
    if not name.isprintable():
        name = name.encode("unicode_escape").decode("ascii")
    return brief(redacted(name), SHOWN_VALUE)


def _source_of(loc: tuple[Any, ...], path: Path, text: str, env: dict[str, Any]) -> str:
    node: Any = env
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            break
        node = node[part]
    else:
        return "environment " + ENV_PREFIX + "__".join(str(p).upper() for p in loc)
    line = _line_of(text, loc) if text else None
    return f"{path}:{line}" if line else str(path)


def _read_secrets(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of the secrets file beside the config (environment wins over it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.removeprefix("export ").split("=", 1)
            values[key.strip()] = value.strip().strip("'\"")
    if values:
        _warn_if_readable_by_others(path)
    return values


_SECRET_NAME = re.compile(r"key|token|secret|passw", re.IGNORECASE)


def _looks_secret(name: str) -> bool:
    """A key whose value must never be printed back, even when misspelt (``api-key``)."""
    return bool(_SECRET_NAME.search(name))


def _warn_if_secret_readable(path: Path, data: dict[str, Any]) -> None:
    """Warn when a file holding anything that looks like a secret is readable by others."""

    def holds_secret(node: Any) -> bool:
        return isinstance(node, dict) and any(
            (_looks_secret(str(k)) and v) or holds_secret(v) for k, v in node.items()
        )

    if holds_secret(data):
        _warn_if_readable_by_others(path)


def _warn_if_readable_by_others(path: Path) -> None:
    if path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("%s holds an API key but is readable by others: chmod 600 %s", path, path)
