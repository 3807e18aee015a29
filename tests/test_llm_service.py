"""LLMService against local fake servers, through the real ollama and google-genai clients.

Nothing here leaves 127.0.0.1: every provider points at a FakeOllama or
FakeGemini started by the test, or at a port nobody listens on.
"""

from __future__ import annotations

import logging
import socket

import pytest
from fake_llm_servers import FakeGemini, FakeOllama

from v2md.config import GeminiConfig, LLMConfig, OllamaConfig
from v2md.errors import InvalidArgumentError, LLMError, OperationTimeoutError
from v2md.llm import LLMService

API_KEY = "test-key-must-never-be-logged"
MAX_RETRIES = 2


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # package prompts only
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)


@pytest.fixture
def ollama_server():
    with FakeOllama("Ollama says hi.") as server:
        yield server


@pytest.fixture
def gemini_server():
    with FakeGemini("Gemini says hi.") as server:
        yield server


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def make_config(ollama_url: str, gemini_url: str, **llm) -> LLMConfig:
    settings = {
        "provider": "ollama",
        "timeout_s": 5.0,
        "max_retries": MAX_RETRIES,
        "retry_backoff_s": 0.001,
        "max_output_chars": 1000,
        "ollama": OllamaConfig(host=ollama_url, model="fake-llama", keep_alive="1m"),
        "gemini": GeminiConfig(api_key=API_KEY, base_url=gemini_url, model="fake-gemini"),
    } | llm
    return LLMConfig(**settings)


@pytest.fixture
async def make_service(ollama_server, gemini_server):
    services: list[LLMService] = []

    def make(ollama_url: str | None = None, **llm) -> LLMService:
        cfg = make_config(ollama_url or ollama_server.url, gemini_server.url, **llm)
        services.append(LLMService(cfg))
        return services[-1]

    yield make
    for service in services:
        await service.close()


@pytest.fixture(params=["ollama", "gemini"])
def provider(request, ollama_server, gemini_server):
    """Each provider alone, with its fake server."""
    server = ollama_server if request.param == "ollama" else gemini_server
    return request.param, server


async def test_ollama_refines_through_streamed_chat(make_service, ollama_server):
    service = make_service()
    assert service.configured
    assert await service.refine("uh so the meeting is at noon") == "Ollama says hi."
    [(path, body)] = ollama_server.requests
    assert path == "/api/chat"
    assert body["model"] == "fake-llama"
    assert body["stream"] is True
    assert body["keep_alive"] == "1m"
    assert body["options"]["temperature"] == pytest.approx(0.2)
    system, user = body["messages"]
    assert system["role"] == "system" and "filler words" in system["content"]
    assert user == {
        "role": "user",
        "content": "<dictation>\nuh so the meeting is at noon\n</dictation>",
    }


async def test_gemini_translates_through_generate_content(make_service, gemini_server):
    service = make_service(provider="gemini")
    assert await service.translate("Guten Morgen", "en") == "Gemini says hi."
    [(path, body)] = gemini_server.requests
    assert path.endswith("/models/fake-gemini:generateContent")
    assert "into English" in body["systemInstruction"]["parts"][0]["text"]
    assert body["contents"][0]["parts"][0]["text"] == "<dictation>\nGuten Morgen\n</dictation>"
    assert body["generationConfig"]["maxOutputTokens"] == 2048


async def test_retries_a_429_then_succeeds(make_service, provider):
    name, server = provider
    server.script("429", "ok")
    assert await make_service(provider=name).refine("text") == server.reply
    assert len(server.requests) == 2


async def test_500_until_retries_run_out_then_falls_back(
    make_service, ollama_server, gemini_server
):
    ollama_server.script("500")
    service = make_service(provider="ollama", fallback=["gemini"])
    assert await service.refine("text") == "Gemini says hi."
    assert len(ollama_server.requests) == MAX_RETRIES + 1
    assert len(gemini_server.requests) == 1


async def test_every_provider_failing_names_each(make_service, ollama_server, gemini_server):
    ollama_server.script("500")
    gemini_server.script("429")
    service = make_service(provider="gemini", fallback=["ollama"])
    with pytest.raises(LLMError) as info:
        await service.refine("text")
    message = str(info.value)
    assert "gemini (fake-gemini): HTTP 429" in message
    assert "ollama (fake-llama at http://127.0.0.1:" in message and "HTTP 500" in message
    assert message.index("gemini") < message.index("ollama")  # in the order tried


@pytest.mark.parametrize("step", ["400", "malformed", "cut"])
async def test_permanent_failures_are_not_retried(make_service, provider, step):
    name, server = provider
    server.script(step)
    with pytest.raises(LLMError, match=f"every LLM provider failed: {name}"):
        await make_service(provider=name).refine("text")
    assert len(server.requests) == 1


async def test_malformed_reply_is_named(make_service, provider):
    name, server = provider
    server.script("malformed")
    with pytest.raises(LLMError, match="malformed reply"):
        await make_service(provider=name).refine("text")


async def test_reply_of_the_wrong_shape_is_a_named_error(make_service, provider):
    name, server = provider
    server.script("shapeless")
    with pytest.raises(LLMError, match=f"every LLM provider failed: {name}"):
        await make_service(provider=name).refine("text")
    assert len(server.requests) == 1


async def test_unusable_ollama_host_is_skipped_with_a_reason(make_service, gemini_server):
    service = make_service(ollama_url="http://127.0.0.1:99999", fallback=["gemini"])
    assert await service.refine("text") == "Gemini says hi."
    alone = make_service(ollama_url="http://127.0.0.1:99999")
    assert not alone.configured
    with pytest.raises(LLMError, match="host is not a usable URL"):
        await alone.refine("text")


async def test_reply_cut_at_the_output_limit_is_refused(make_service, provider):
    name, server = provider
    server.script("cut")
    with pytest.raises(LLMError, match="cut off"):
        await make_service(provider=name).refine("text")


async def test_reply_over_the_size_limit_is_refused(make_service, provider):
    name, server = provider
    server.script("huge")
    with pytest.raises(LLMError, match="longer than the limit of 1000 characters"):
        await make_service(provider=name).refine("text")


async def test_slow_server_times_out(make_service, provider):
    name, server = provider
    server.script("slow")
    with pytest.raises(OperationTimeoutError, match=r"timeout_s = 0\.3 s"):
        await make_service(provider=name, timeout_s=0.3).refine("text")


async def test_timeout_on_one_provider_falls_back(make_service, ollama_server, gemini_server):
    ollama_server.script("slow")
    # long enough for the fallback's own answer on a loaded machine, well under slow_s
    service = make_service(fallback=["gemini"], timeout_s=1.5)
    assert await service.refine("text") == "Gemini says hi."


async def test_timeout_and_another_failure_is_an_llm_error(
    make_service, ollama_server, gemini_server
):
    ollama_server.script("slow")
    gemini_server.script("400")
    with pytest.raises(LLMError, match="no answer within timeout_s") as info:
        await make_service(fallback=["gemini"], timeout_s=0.3).refine("text")
    assert not isinstance(info.value, OperationTimeoutError)


async def test_connection_refused_falls_back(make_service, closed_port, gemini_server):
    service = make_service(ollama_url=closed_port, fallback=["gemini"])
    assert await service.refine("text") == "Gemini says hi."


async def test_connection_refused_alone_is_an_llm_error(make_service, closed_port):
    with pytest.raises(LLMError, match=f"cannot reach {closed_port}"):
        await make_service(ollama_url=closed_port).refine("text")


async def test_credentials_in_the_host_stay_out_of_messages(make_service, closed_port, caplog):
    host = closed_port.replace("http://", "http://user:hunter2@")
    with pytest.raises(LLMError) as info:
        await make_service(ollama_url=host).refine("text")
    assert closed_port in str(info.value)
    assert "hunter2" not in str(info.value) and "hunter2" not in caplog.text


async def test_provider_none_says_how_to_configure(make_service, ollama_server, tmp_path):
    service = make_service(provider="none", fallback=["ollama"])
    assert not service.configured
    with pytest.raises(LLMError) as info:
        await service.refine("text")
    assert ollama_server.requests == []
    # The files named are those the daemon reads: $XDG_CONFIG_HOME is tmp_path/config here.
    config = tmp_path / "config" / "v2m"
    assert f"set provider under [llm] in {config / 'config.toml'} " in str(info.value)
    assert f"GEMINI_API_KEY in the environment or in {config / '.env'}" in str(info.value)
    assert "~/.config" not in str(info.value)


async def test_without_a_provider_the_config_file_given_to_v2md_is_named(tmp_path):
    mine = tmp_path / "elsewhere" / "dictation.toml"
    service = LLMService(LLMConfig(), mine)
    with pytest.raises(LLMError) as info:
        await service.translate("text", "de")
    assert f"in {mine} " in str(info.value) and f"{mine.parent / '.env'}" in str(info.value)


async def test_gemini_without_key_is_skipped_with_a_reason(make_service, ollama_server):
    service = make_service(provider="gemini", fallback=["ollama"], gemini=GeminiConfig())
    assert service.configured  # ollama can still be tried
    assert await service.refine("text") == "Ollama says hi."
    alone = make_service(provider="gemini", gemini=GeminiConfig())
    assert not alone.configured
    with pytest.raises(LLMError, match="GEMINI_API_KEY"):
        await alone.refine("text")


@pytest.mark.parametrize("reply", ["", "  \n ", "<dictation>\n</dictation>"])
async def test_empty_reply_is_a_failure_not_an_empty_text(make_service, ollama_server, reply):
    ollama_server.reply = reply
    with pytest.raises(LLMError, match="empty reply"):
        await make_service().refine("text")


@pytest.mark.parametrize("text", ["", "   \n\t"])
async def test_empty_text_is_invalid(make_service, ollama_server, text):
    with pytest.raises(InvalidArgumentError, match="empty"):
        await make_service().refine(text)
    with pytest.raises(InvalidArgumentError, match="empty"):
        await make_service().translate(text, "de")
    assert ollama_server.requests == []


async def test_text_over_the_input_limit_is_invalid(make_service, ollama_server):
    service = make_service(max_input_chars=10)
    assert await service.refine("x" * 10) == "Ollama says hi."
    with pytest.raises(InvalidArgumentError, match="11 characters, more than"):
        await service.refine("x" * 11)
    assert len(ollama_server.requests) == 1


async def test_unknown_language_is_invalid(make_service, ollama_server):
    with pytest.raises(InvalidArgumentError, match="unknown target language 'xx'"):
        await make_service().translate("text", "xx")
    assert ollama_server.requests == []


async def test_user_prompt_override_is_sent(make_service, ollama_server, tmp_path):
    (tmp_path / "refine.txt").write_text("House style: commas only.")
    await make_service(prompts_dir=tmp_path).refine("text")
    assert ollama_server.requests[0][1]["messages"][0]["content"] == "House style: commas only."


async def test_logs_hold_neither_the_key_nor_the_text(
    make_service, ollama_server, gemini_server, caplog
):
    secret_text = "my bank PIN is 4711"
    caplog.set_level(logging.DEBUG)
    ollama_server.script("500")
    gemini_server.script("429", "ok")
    await make_service(provider="ollama", fallback=["gemini"]).refine(secret_text)
    assert API_KEY not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "4711" in r.getMessage()]
    assert "19 chars in" in caplog.text  # the length is what INFO reports


async def test_fake_ollama_speaks_every_shape_the_client_reads(ollama_server):
    """The fake is shared with the D-Bus tests, which may use the other Ollama endpoints."""
    import ollama

    client = ollama.AsyncClient(host=ollama_server.url)
    try:
        chat = await client.chat(model="m", messages=[{"role": "user", "content": "hi"}])
        assert chat.message.content == "Ollama says hi."
        generated = await client.generate(model="m", prompt="hi")
        assert generated.response == "Ollama says hi."
        parts = [
            p.response async for p in await client.generate(model="m", prompt="hi", stream=True)
        ]
        assert len(parts) > 2 and "".join(parts) == "Ollama says hi."
    finally:
        await client.close()
