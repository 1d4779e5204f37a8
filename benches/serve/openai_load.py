#!/usr/bin/env python3
"""Concurrent streaming chat completions through the official `openai` client; one JSON line of figures.

N requests (default: as many as --concurrency, 8) run at once through one AsyncOpenAI client, each a
streaming chat completion of --max-tokens (64) at temperature 0 on its own short prompt. Per request it
measures the time to the first content token (TTFT), the whole latency and the completion tokens (the
`usage` chunk from `stream_options={"include_usage": true}` when the server sends one, else the number of
content chunks). It prints one line:

  {"server", "concurrency", "requests", "aggregate_tok_s", "ttft_p50_ms", "ttft_p99_ms",
   "latency_p50_ms", "latency_p99_ms", ...}

aggregate_tok_s = all completion tokens / wall time from the first request sent to the last stream ended.

So that every request produces --max-tokens tokens, the server is asked not to stop early (--no-stop):
  llama   extra_body {"ignore_eos": true, "n_predict": MAX_TOKENS}   (llama-server)
  rwkv    extra_body {"rwkv": {"ignore_stop": true}}                  (rwkv-serve)
  none    nothing (--extra-body adds any JSON object of your own, merged over the preset)
With --no-stop auto (the default) the preset is picked from --server (a name containing "llama" -> llama,
"rwkv"/"ours" -> rwkv). A request that still ends short is counted in "short" and warned about.

  python openai_load.py --base-url http://127.0.0.1:8080/v1 --server llama-server
  python openai_load.py --base-url http://127.0.0.1:8081/v1 --server rwkv-serve --single
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time

try:
    import openai
    from openai import AsyncOpenAI
except ImportError:  # pragma: no cover
    sys.exit("openai_load.py needs the `openai` package: pip install -r requirements.txt")

# Short, distinct prompts (distinct so that no server can answer one request from another's prefix cache).
PROMPTS = [
    "Write a short poem about the sea.",
    "Explain what a hash map is.",
    "List three uses of copper.",
    "Describe a sunrise over the mountains.",
    "What is the capital of France, and why is it famous?",
    "Give me a recipe for pancakes.",
    "Summarize the plot of Hamlet.",
    "How does a bicycle stay upright?",
    "Tell a story about a lost robot.",
    "Why is the sky blue?",
    "Name five prime numbers and explain one property of primes.",
    "What does a compiler do?",
    "Describe the smell of rain.",
    "How do bees make honey?",
    "Explain recursion to a child.",
    "What are the rules of chess for the knight?",
]


def percentile(xs: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = (len(s) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def no_stop_body(preset: str, max_tokens: int) -> dict:
    if preset == "llama":
        return {"ignore_eos": True, "n_predict": max_tokens}
    if preset == "rwkv":
        return {"rwkv": {"ignore_stop": True}}
    return {}


def delta_text(chunk) -> str:
    """Content of a chunk's first choice (also reasoning text, which some servers split off)."""
    if not chunk.choices:
        return ""
    d = chunk.choices[0].delta
    if d is None:
        return ""
    text = d.content or ""
    extra = getattr(d, "model_extra", None) or {}
    return text + (extra.get("reasoning_content") or "")


async def one_request(client: AsyncOpenAI, model: str, i: int, max_tokens: int, extra_body: dict,
                      t_start: float) -> dict:
    prompt = PROMPTS[i % len(PROMPTS)]
    if i >= len(PROMPTS):
        prompt = f"{prompt} ({i // len(PROMPTS)})"
    t0 = time.perf_counter()
    ttft = None
    chunks = 0
    usage_tokens = None
    finish = None
    text = []
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra_body or None,
    )
    async for chunk in stream:
        t = delta_text(chunk)
        if t:
            if ttft is None:
                ttft = time.perf_counter() - t0
            chunks += 1
            text.append(t)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
        if chunk.usage is not None and chunk.usage.completion_tokens is not None:
            usage_tokens = chunk.usage.completion_tokens
    t1 = time.perf_counter()
    tokens = usage_tokens if usage_tokens is not None else chunks
    return {
        "i": i,
        "start_s": t0 - t_start,
        "end_s": t1 - t_start,
        "ttft_s": ttft if ttft is not None else t1 - t0,
        "latency_s": t1 - t0,
        "tokens": tokens,
        "content_chunks": chunks,
        "usage": usage_tokens is not None,
        "finish_reason": finish,
        "text": "".join(text),
    }


async def run(args) -> dict:
    client = AsyncOpenAI(base_url=args.base_url, api_key=args.api_key, timeout=args.timeout, max_retries=0)
    model = args.model
    if model is None:
        try:
            models = await client.models.list()
            model = models.data[0].id if models.data else "default"
        except Exception:  # noqa: BLE001 - any server without /v1/models
            model = "default"

    preset = args.no_stop
    if preset == "auto":
        name = args.server.lower()
        preset = "llama" if "llama" in name else "rwkv" if ("rwkv" in name or "ours" in name) else "none"
    extra_body = no_stop_body(preset, args.max_tokens)
    if args.extra_body:
        extra_body.update(json.loads(args.extra_body))

    for w in range(args.warmup):  # not timed: first-request costs (page faults, thread pools, graphs)
        n = min(8, args.max_tokens)
        warm_body = dict(extra_body, n_predict=n) if "n_predict" in extra_body else extra_body
        await one_request(client, model, 1000 + w, n, warm_body, time.perf_counter())

    sem = asyncio.Semaphore(args.concurrency)
    cpu0 = time.process_time()
    t_start = time.perf_counter()

    async def gated(i: int):
        async with sem:
            return await one_request(client, model, i, args.max_tokens, extra_body, t_start)

    results = await asyncio.gather(*(gated(i) for i in range(args.requests)), return_exceptions=True)
    wall = time.perf_counter() - t_start
    client_cpu = time.process_time() - cpu0
    await client.close()

    ok = [r for r in results if isinstance(r, dict)]
    errors = [r for r in results if not isinstance(r, dict)]
    for e in errors:
        print(f"openai_load: request failed: {type(e).__name__}: {e}", file=sys.stderr)
    short = [r for r in ok if r["tokens"] < args.max_tokens]
    if short:
        print(f"openai_load: {len(short)} request(s) ended before {args.max_tokens} tokens "
              f"(tokens {[r['tokens'] for r in short]}, finish {[r['finish_reason'] for r in short]})",
              file=sys.stderr)
    if args.verbose:
        for r in sorted(ok, key=lambda r: r["i"]):
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()},
                             ensure_ascii=False), file=sys.stderr)

    tokens = sum(r["tokens"] for r in ok)
    ttft = [r["ttft_s"] * 1e3 for r in ok]
    lat = [r["latency_s"] * 1e3 for r in ok]
    # per stream decode speed after the first token
    itl = [(r["latency_s"] - r["ttft_s"]) * 1e3 / (r["tokens"] - 1) for r in ok if r["tokens"] > 1]
    rnd = lambda x: round(x, 1) if isinstance(x, float) and math.isfinite(x) else None  # noqa: E731
    return {
        "server": args.server,
        "concurrency": args.concurrency,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "completion_tokens": tokens,
        "wall_s": round(wall, 3),
        "aggregate_tok_s": rnd(tokens / wall if wall > 0 else float("nan")),
        "ttft_p50_ms": rnd(percentile(ttft, 50)),
        "ttft_p99_ms": rnd(percentile(ttft, 99)),
        "latency_p50_ms": rnd(percentile(lat, 50)),
        "latency_p99_ms": rnd(percentile(lat, 99)),
        "itl_p50_ms": rnd(percentile(itl, 50)),
        "errors": len(errors),
        "short": len(short),
        "usage_reported": all(r["usage"] for r in ok) if ok else False,
        "client_cpu_s": round(client_cpu, 3),
        # the whole process so far (imports and warm-up too), for whoever measures the machine around it
        "client_process_cpu_s": round(time.process_time(), 3),
        "no_stop": preset,
        "model": model,
        "openai": openai.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1", help="the server's OpenAI base URL")
    ap.add_argument("--server", default="server", help="a label for the JSON line (also picks --no-stop auto)")
    ap.add_argument("--model", default=None, help="model name to send (default: the first of /v1/models)")
    ap.add_argument("--api-key", default="none")
    ap.add_argument("-c", "--concurrency", type=int, default=8, help="requests in flight at once")
    ap.add_argument("-n", "--requests", type=int, default=None, help="requests in all (default: --concurrency)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--single", action="store_true", help="one request at a time (concurrency 1, 1 request "
                    "unless --requests says more): the single-generation figure")
    ap.add_argument("--no-stop", choices=["auto", "llama", "rwkv", "none"], default="auto",
                    help="how the server is told to generate all --max-tokens (see above)")
    ap.add_argument("--extra-body", default=None, help="a JSON object merged into every request's body")
    ap.add_argument("--warmup", type=int, default=1, help="untimed 8-token requests before the run")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("-v", "--verbose", action="store_true", help="each request's figures and text on stderr")
    args = ap.parse_args()
    if args.single:
        args.concurrency = 1
    if args.requests is None:
        args.requests = args.concurrency
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
