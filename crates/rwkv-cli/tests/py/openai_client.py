"""The official openai package against rwkv-serve: a streamed chat completion, a non-streamed
one, and a chat turn grounded in a store (evidence lines must equal the stored files' lines).
Usage: openai_client.py BASE_URL MODEL STORE ROOT. Prints one JSON line; exits 1 on failure."""
import json
import os
import sys

from openai import OpenAI

base, model, store, root = sys.argv[1:5]
client = OpenAI(base_url=base + "/v1", api_key=os.environ.get("RWKV_KEY", "none"))
out = {}

stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "fn add(a: i64, b: i64) -> i64"}],
    max_tokens=8,
    stream=True,
    stream_options={"include_usage": True},
)
chunks, text, usage = 0, "", None
for c in stream:
    chunks += 1
    if c.choices and c.choices[0].delta.content:
        text += c.choices[0].delta.content
    if c.usage:
        usage = c.usage.total_tokens
assert chunks >= 2, chunks
assert usage and usage > 0, usage
out["stream_chunks"] = chunks
out["stream_text"] = text

whole = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "fn add(a: i64, b: i64) -> i64"}],
    max_tokens=8,
)
assert whole.choices[0].message.content == text, (whole.choices[0].message.content, text)
assert whole.usage.completion_tokens >= 1

grounded = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What does fold_planned do?"}],
    max_tokens=8,
    extra_body={"rwkv": {"store": store}},
)
extra = grounded.model_extra or {}
evidence = extra.get("evidence") or []
assert evidence, extra
for e in evidence:
    path = e["path"] if os.path.isabs(e["path"]) else os.path.join(root, e["path"])
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert lines[e["line"] - 1] == e["text"], (e, lines[e["line"] - 1])
assert extra.get("sources"), extra
out["grounded_evidence"] = len(evidence)
out["grounded_source"] = extra["sources"][0]["path"]

# Streamed grounded turn: the first chunk carries the evidence.
s = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What does fold_planned do?"}],
    max_tokens=4,
    stream=True,
    extra_body={"rwkv": {"store": store}},
)
first = next(iter(s))
assert (first.model_extra or {}).get("evidence"), first
for _ in s:
    pass

models = client.models.list()
assert [m.id for m in models.data] == [model]
print(json.dumps(out))
