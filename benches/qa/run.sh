#!/usr/bin/env bash
# The QA retrieval benchmark end to end: fetch the ten code bases (pinned versions, from their
# package registries), ingest each into its own store with the model (default: the bundled demo
# model), then ask every question of its set with `rwkv-bench qa`, which prints rwkv-ask's
# evidence hit@1/hit@3, source hit@3 and abstention beside the grep baseline, from one run.
#
#   benches/qa/run.sh [DEST] [-- extra rwkv-bench qa flags, e.g. -v or --json]
#
# DEST (default /tmp/rwkv-qa) holds the code bases and the stores; reruns reuse both (an
# unchanged store is not folded again). Never run by CI: it needs the registries and minutes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dest="${1:-/tmp/rwkv-qa}"
shift || true
[ "${1:-}" = "--" ] && shift
extra=("$@")

cd "$repo"
cargo build --release -q -p rwkv-cli --bin rwkv-ingest -p rwkv-bench --bin rwkv-bench
"$here/fetch.sh" "$dest"

for set in click toml_edit express attrs commander cobra lua jsoup rxjs leveldb; do
    store="$dest/stores/$set"
    echo "== $set: ingest $dest/$set into $store" >&2
    start=$(date +%s.%N)
    (cd "$dest" && "$repo/target/release/rwkv-ingest" "$set" --store "$store" --json >"$dest/ingest-$set.json")
    end=$(date +%s.%N)
    python3 - "$dest/ingest-$set.json" "$start" "$end" <<'PY' >&2
import json, sys
s = json.load(open(sys.argv[1]))
print(f"   {s['store_documents']} documents, {s['tokens']} tokens folded, "
      f"{float(sys.argv[3]) - float(sys.argv[2]):.1f} s, store {s['store_bytes']:,} bytes")
PY
    echo "== $set: questions" >&2
    "$repo/target/release/rwkv-bench" qa --store "$store" --questions "$here/$set.jsonl" "${extra[@]}"
done
