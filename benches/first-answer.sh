#!/usr/bin/env bash
# Time to the first answer on a code base never seen before, against the time a full ingest takes,
# from one run:
#
#   benches/first-answer.sh MODEL TREE "QUESTION" [--full]
#
# 1. `rwkv-ingest TREE --index-only` into a fresh store: extract, tokenize, index (seconds, and
#    the tokens a full fold would read).
# 2. `rwkv-ask QUESTION --generate` on that store: evidence at once, then the answering document
#    folded on demand to the unit, then the answer (wall time of the command, its phases from
#    `--json`: retrieve, fold, read, first token).
# 3. The same question again.
# 4. The full ingest: measured with `--full` (the fold of the whole store), else estimated from
#    the tokens and the on-demand fold's tokens/s of step 2.
#
# MODEL is a checkpoint (`demo` for the bundled demo model); random weights of a real shape
# (`rwkv-bench make-model`) measure speed only. Prints one table and writes the JSON lines of
# each step next to the store ($FIRST_ANSWER_DIR, default a temporary directory).
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,18p "$0"; exit 2; }
model="$1" tree="$2" question="$3" full="${4:-}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$repo/target/release"
[ -x "$bin/rwkv-ingest" ] && [ -x "$bin/rwkv-ask" ] || (cd "$repo" && cargo build --release -q -p rwkv-cli)
dir="${FIRST_ANSWER_DIR:-$(mktemp -d)}"
mkdir -p "$dir"
store="$dir/store"
rm -rf "$store"
margs=()
[ "$model" = demo ] || margs=(--model "$model")

now() { date +%s.%N; }
t0=$(now)
"$bin/rwkv-ingest" "$tree" "${margs[@]}" --index-only --json --store "$store" >"$dir/index.json"
t1=$(now)
ask() {
    local out="$1" s e
    s=$(now)
    "$bin/rwkv-ask" "$question" "${margs[@]}" --generate --max-tokens 16 --json --store "$store" >"$out"
    e=$(now)
    echo "$s $e"
}
read -r a1 b1 < <(ask "$dir/ask1.json")
read -r a2 b2 < <(ask "$dir/ask2.json")
fs="" fe=""
if [ "$full" = "--full" ]; then
    fs=$(now)
    "$bin/rwkv-ingest" "$tree" "${margs[@]}" --json --store "$store" >"$dir/full.json"
    fe=$(now)
fi

python3 - "$dir" "$t0" "$t1" "$a1" "$b1" "$a2" "$b2" "$fs" "$fe" <<'PY'
import json, sys
d, t0, t1, a1, b1, a2, b2, fs, fe = sys.argv[1], *sys.argv[2:]
idx = json.load(open(f"{d}/index.json"))
asks = [json.load(open(f"{d}/ask{i}.json")) for i in (1, 2)]
walls = [float(b1) - float(a1), float(b2) - float(a2)]
index_s = float(t1) - float(t0)
tokens = idx["store_tokens"]
t = asks[0]["timings"]
# The fold and the re-read are the same forward pass over tokens: a full fold's speed.
rate = (t["folded_tokens"] + t["read_tokens"]) / ((t["fold_ms"] + t["read_ms"]) / 1e3)
if fs:
    full = json.load(open(f"{d}/full.json"))
    full_s, how = float(fe) - float(fs), f"measured ({full['tokens']:,} tokens, {full['tokens_per_second']:.0f} tok/s)"
else:
    full_s, how = tokens / rate, f"estimated: {tokens:,} tokens at the ask's {rate:.0f} tok/s (fold and re-read)"
print(f"documents {idx['store_documents']}, tokens {tokens:,}, store {d}/store")
print(f"| step | seconds | share of index + full ingest |")
print(f"|---|---|---|")
total = index_s + full_s
print(f"| index (--index-only) | {index_s:.1f} | {100 * index_s / total:.2f} % |")
for i, (a, w) in enumerate(zip(asks, walls)):
    tm = a["timings"]
    to_first = (tm["load_ms"] + tm["first_token_ms"]) / 1e3
    first = index_s + to_first if i == 0 else to_first
    label = ("fresh store → first answer token (index, load, ask)" if i == 0
             else "the same question again → first answer token")
    print(f"| {label} | {first:.1f} | {100 * first / total:.2f} % |")
    print(f"|   ask {i + 1}: wall {w:.1f} s (with the commit of its fold); load {tm['load_ms']:.0f} ms, "
          f"retrieve {tm['retrieve_ms']:.0f} ms, fold {tm['fold_ms']:.0f} ms "
          f"({tm['folded_tokens']} tokens), restore {tm['restore_ms']:.0f} ms, read {tm['read_ms']:.0f} ms "
          f"({tm['read_tokens']} tokens), first token at {tm['first_token_ms']:.0f} ms | | |")
print(f"| full ingest, {how} | {full_s:.1f} | |")
same = asks[0]["text"] == asks[1]["text"] and asks[0]["evidence"] == asks[1]["evidence"]
print(f"answers of both asks equal: {same}; evidence: " +
      ", ".join(f"{e['path']}:{e['line']}" for e in asks[0]["evidence"]))
PY
