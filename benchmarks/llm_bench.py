"""What LLMService adds to an LLM call, against the client library called directly.

Both sides talk to the same local fake server (tests/fake_llm_servers.py) in the
same run, alternating call by call so drift hits both alike. "direct" sends the
same, prebuilt prompt with the bare client (Ollama: streamed /api/chat, as the
service does; Gemini: generateContent); "service" is ``LLMService.refine``,
which adds validation, reading the prompt file, fencing the text, the deadline,
the retry loop and reply checks; "daemon" is ``Refine`` over D-Bus to a real
v2md on a private bus, configured with the same fake server, so it adds the bus
round trip on top. The difference of the medians is the overhead.

    python benchmarks/llm_bench.py [--calls 300] [--provider ollama|gemini|both]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import ollama  # noqa: E402
from dbus_fast.aio import MessageBus  # noqa: E402
from fake_llm_servers import FakeGemini, FakeOllama  # noqa: E402
from google import genai  # noqa: E402
from google.genai import types as genai_types  # noqa: E402
from harness import Daemon, PrivateBus  # noqa: E402

from v2md.client import dictation_proxy  # noqa: E402
from v2md.config import GeminiConfig, LLMConfig, OllamaConfig  # noqa: E402
from v2md.llm import LLMService  # noqa: E402
from v2md.llm.prompts import refine_prompt  # noqa: E402

TEXT = (
    "so um the quarterly numbers came in this morning and uh they look better than we "
    "expected revenue is up about twelve percent and the new region is finally paying for "
    "itself I think we should send a short note to the team before the all hands on friday "
    "and maybe uh ask finance to double check the currency conversion for the last month"
)
REPLY = (
    "The quarterly numbers came in this morning, and they look better than we expected: "
    "revenue is up about twelve percent, and the new region is finally paying for itself. "
    "I think we should send a short note to the team before the all-hands on Friday, and "
    "ask finance to double-check the currency conversion for the last month."
)
WARMUP = 20

Call = Callable[[], Awaitable[str]]


async def direct_ollama(url: str, prompts_dir: Path) -> tuple[Call, Callable[[], Awaitable]]:
    client = ollama.AsyncClient(host=url)
    prompt = refine_prompt(TEXT, prompts_dir)
    messages = [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": prompt.user},
    ]

    async def call() -> str:
        stream = await client.chat(
            model="bench",
            messages=messages,
            stream=True,
            options={"temperature": 0.2},
            keep_alive="5m",
        )
        return "".join([part.message.content or "" async for part in stream])

    return call, client.close


async def direct_gemini(url: str, prompts_dir: Path) -> tuple[Call, Callable[[], Awaitable]]:
    client = genai.Client(
        api_key="bench-key",
        http_options=genai_types.HttpOptions(
            base_url=url, retry_options=genai_types.HttpRetryOptions(attempts=1)
        ),
    )
    prompt = refine_prompt(TEXT, prompts_dir)
    config = genai_types.GenerateContentConfig(
        system_instruction=prompt.system, temperature=0.2, max_output_tokens=2048
    )

    async def call() -> str:
        response = await client.aio.models.generate_content(
            model="bench", contents=prompt.user, config=config
        )
        return response.text or ""

    return call, client.aio.aclose


def percentile(samples: list[float], q: float) -> float:
    return (
        statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if q < 100 else max(samples)
    )


async def measure(sides: dict[str, Call], calls: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in sides}
    for i in range(WARMUP + calls):
        for name, call in sides.items():
            started = time.perf_counter()
            reply = await call()
            elapsed = time.perf_counter() - started
            if reply != REPLY:
                raise SystemExit(f"{name} returned {reply[:60]!r}, not the fake's reply")
            if i >= WARMUP:
                times[name].append(elapsed * 1000)
    return times


async def bench(provider: str, calls: int, prompts_dir: Path) -> None:
    with FakeOllama(REPLY) as fake_ollama, FakeGemini(REPLY) as fake_gemini:
        cfg = LLMConfig(
            provider=provider,
            prompts_dir=prompts_dir,
            ollama=OllamaConfig(host=fake_ollama.url, model="bench"),
            gemini=GeminiConfig(api_key="bench-key", base_url=fake_gemini.url, model="bench"),
        )
        service = LLMService(cfg)
        make_direct = direct_ollama if provider == "ollama" else direct_gemini
        url = fake_ollama.url if provider == "ollama" else fake_gemini.url
        direct, close_direct = await make_direct(url, prompts_dir)
        private = PrivateBus()
        daemon = Daemon(
            private,
            prompts_dir,
            V2M_LLM__PROVIDER=provider,
            V2M_LLM__PROMPTS_DIR=str(prompts_dir),
            V2M_LLM__OLLAMA__HOST=fake_ollama.url,
            V2M_LLM__OLLAMA__MODEL="bench",
            V2M_LLM__GEMINI__BASE_URL=fake_gemini.url,
            V2M_LLM__GEMINI__MODEL="bench",
            GEMINI_API_KEY="bench-key",
            V2M_LOG_LEVEL="warning",
        ).start()
        await daemon.wait_ready()
        bus = await MessageBus(bus_address=private.address).connect()
        try:
            iface, _ = await dictation_proxy(bus)
            sides = {
                "direct": direct,
                "service": lambda: service.refine(TEXT),
                "daemon": lambda: iface.call_refine(TEXT),
            }
            times = await measure(sides, calls)
        finally:
            bus.disconnect()
            daemon.stop()
            private.close()
            await close_direct()
            await service.close()
    p = {name: (percentile(t, 50), percentile(t, 95)) for name, t in times.items()}
    for i, name in enumerate(p):
        label = provider if i == 0 else ""
        print(f"{label:<7} {name:<8} p50 {p[name][0]:7.3f} ms   p95 {p[name][1]:7.3f} ms")
    for name in ("service", "daemon"):
        added = [p[name][i] - p["direct"][i] for i in (0, 1)]
        print(f"{'':<7} {'+' + name:<8} p50 {added[0]:7.3f} ms   p95 {added[1]:7.3f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="measured calls per side")
    parser.add_argument("--provider", choices=["ollama", "gemini", "both"], default="both")
    args = parser.parse_args()
    providers = ["ollama", "gemini"] if args.provider == "both" else [args.provider]
    print(f"{args.calls} calls per side after {WARMUP} warm-up, alternating, local fake server")
    # An empty prompts dir: the service reads the package's prompt file on every call, as
    # a user without overrides would; the user's own config stays out of the figures.
    with tempfile.TemporaryDirectory() as empty:
        for provider in providers:
            await bench(provider, args.calls, Path(empty))


if __name__ == "__main__":
    asyncio.run(main())
