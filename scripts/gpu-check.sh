#!/usr/bin/env bash
# The one prepared check of the CUDA build on a GPU machine: exactness of the GPU path against
# the CPU path, then the speed bench, then a real ingest; everything into $OUT.
#
# Made here (no GPU):   bash scripts/build-cuda.sh        # → target-cuda/carry/*.xz (~20 MB)
#                       bash scripts/gpu-check.sh --slim  # the tree must travel in 64 MiB
# Run on the device (the `run` tool, one call, in the repo root of a copy of this tree):
#   run(command="bash scripts/gpu-check.sh", carry=["target-cuda/carry"], timeout_s=560)
# Then here:            git checkout -- .                 # puts the slimmed files back
#
# `--slim` deletes from the working tree (never from git) the tracked files the check does not
# read — the other fixtures, the bundled vocabularies (compiled into the binaries) — so the
# tree (~45 MB) and the carried binaries (~20 MB) fit the device tool's 64 MiB.
#
# Steps (each logged to $OUT/gpu-check.log, a failure recorded and the next step run):
#   0. environment: nvidia-smi, glibc, the CUDA 13 libraries of the machine's PyTorch venv
#   1. exactness: fold-bench --exact on the demo model and the tiny RWKV-7 fixtures, GPU vs
#      CPU f32 fold (bits/token within 0.5 %, max |logit diff|, greedy continuations)
#   2. speed: fold-bench --device cuda at 0.1b (64 lanes), 1.5b (single + 64 lanes), 7.2b
#      (single + 32 lanes): fold, batched fold, decode, GEMM-only limit, GPU memory
#   3. a real ingest: this repo's crates/ with a 1.5B-shape model on the GPU (wall, tok/s), and
#      a CPU bf16 ingest of crates/rwkv-index with the same model compared in structure
# Environment: GPU_CHECK_QUICK=1 runs small sizes only (a dry run; also works with
# GPU_CHECK_DEVICE=cpu on a machine without a GPU, with the default build's binaries in BIN).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [[ ${1:-} == --slim ]]; then
    # Keep of fixtures/ only what the check reads; drop the vocabularies (compiled in).
    keep='^fixtures/(models/(rwkv7-code-11m\.bf16|tiny-rwkv-7v0-834K|random-x070-C64-L2-H4N16)\.safetensors|code/README\.md)$'
    git ls-files fixtures crates/rwkv-tokenizers/vocab | grep -Ev "$keep" | tr '\n' '\0' | xargs -0 rm -f
    echo "gpu-check: slimmed; the tree now holds $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) bytes (restore: git checkout -- .)"
    exit 0
fi
OUT=${OUT:-$root/gpu-check-out}
mkdir -p "$OUT"
log="$OUT/gpu-check.log"  # the device tool returns at most 8 files: the log, summary.txt, results.jsonl
device=${GPU_CHECK_DEVICE:-cuda}
quick=${GPU_CHECK_QUICK:-0}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
res="$tmp/out"
mkdir -p "$res"
summary=()
failures=0

note() { echo "[$(date +%T)] $*" | tee -a "$log" >&2; }
start=$SECONDS
budget=${GPU_CHECK_BUDGET:-520} # seconds: later steps are skipped, each step cut to what is left
step() { # step NAME SECONDS CMD...: run (at most SECONDS, and never past the budget), log, keep going
    local name=$1 limit=$2
    shift 2
    local left=$((budget - (SECONDS - start)))
    ((left < limit)) && limit=$left
    if ((limit < 10)); then
        summary+=("skip  $name (out of time)")
        note "== $name: skipped, out of time"
        return
    fi
    note "== $name (${limit}s at most): $*"
    local rc=0
    timeout -k 5 "$limit" "$@" > "$res/$name.out" 2>> "$log" || rc=$?
    if ((rc == 0)); then
        summary+=("ok    $name ($((SECONDS - start))s)")
    elif ((rc == 124 || rc == 137)); then
        summary+=("FAIL  $name (timed out after ${limit}s)")
        failures=$((failures + 1))
    else
        summary+=("FAIL  $name (exit $rc)")
        failures=$((failures + 1))
    fi
    cat "$res/$name.out" >> "$log"
    # One JSON line per step that printed JSON (fold-bench and rwkv-ingest --json).
    python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); d["step"]=sys.argv[2]; print(json.dumps(d))' \
        "$res/$name.out" "$name" >> "$OUT/results.jsonl" 2>/dev/null || true
}

# 0. Binaries and libraries.
bin=${BIN:-$tmp/bin}
if [[ -z ${BIN:-} ]]; then
    mkdir -p "$bin"
    for f in target-cuda/carry/*.xz; do
        [[ -e $f ]] || { note "no target-cuda/carry/*.xz: run scripts/build-cuda.sh and carry target-cuda/carry"; exit 2; }
        xz -dc "$f" > "$bin/$(basename "$f" .xz)" && chmod +x "$bin/$(basename "$f" .xz)"
    done
fi
if [[ $device != cpu ]]; then
    cu13=$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13", "lib"))' 2>/dev/null ||
        ls -d /opt/*/lib/python3*/site-packages/nvidia/cu13/lib /usr/local/lib/python3*/*-packages/nvidia/cu13/lib 2>/dev/null | head -1)
    [[ -n $cu13 ]] || cu13=$(find / -path '*nvidia/cu13/lib' -type d 2>/dev/null | head -1)
    export LD_LIBRARY_PATH="${cu13}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    note "CUDA libraries: $cu13"
    nvidia-smi >> "$log" 2>&1 || note "nvidia-smi failed"
fi
ldd --version 2>&1 | head -1 >> "$log"
nproc >> "$log"

# 1. Exactness on the real small models.
for m in fixtures/models/rwkv7-code-11m.bf16.safetensors fixtures/models/tiny-rwkv-7v0-834K.safetensors \
    fixtures/models/random-x070-C64-L2-H4N16.safetensors; do
    name=exact-$(basename "$m" .safetensors)
    step "$name" 60 "$bin/fold-bench" --exact fixtures/code/README.md --model "$m" --device "$device" --json
done

# 2. Speed, random weights of the real shapes written on this machine's disk.
if [[ $quick == 1 ]]; then
    step bench-0.1b 120 "$bin/fold-bench" --shape 0.1b --device "$device" --lanes 4 --tokens 256 --decode-tokens 8 --repeats 1 --tmp "$tmp" --json
else
    step bench-0.1b 90 "$bin/fold-bench" --shape 0.1b --device "$device" --lanes 64 --tokens 2048 --decode-tokens 64 --tmp "$tmp" --json --threads 16
    step bench-1.5b 150 "$bin/fold-bench" --shape 1.5b --device "$device" --lanes 64 --tokens 2048 --decode-tokens 64 --repeats 2 --tmp "$tmp" --keep --json --threads 16
fi

# 3. A real ingest with the kept 1.5B-shape file (the demo model in a quick run).
model=$(ls "$tmp"/fold-bench-*/rwkv7-1.5b-*.safetensors 2>/dev/null | head -1)
[[ -n $model ]] || model=fixtures/models/rwkv7-code-11m.bf16.safetensors
corpus=crates
[[ $quick == 1 ]] && corpus=crates/rwkv-index
# A GPU folds bf16; a dry run on the CPU asks for the same fold.
fold=(--lanes 32)
[[ $device == cpu ]] && fold=(--lanes 4 --fold-precision bf16)
step ingest-gpu 120 "$bin/rwkv-ingest" "$corpus" --store "$tmp/gpu" --model "$model" --device "$device" "${fold[@]}" --json
step ingest-gpu-subset 60 "$bin/rwkv-ingest" crates/rwkv-index --store "$tmp/gpu-subset" --model "$model" --device "$device" "${fold[@]}" --json
step ingest-cpu-subset 90 "$bin/rwkv-ingest" crates/rwkv-index --store "$tmp/cpu-subset" --model "$model" --device cpu --fold-precision bf16 --fold-jobs 1 --json
# Structure: the same documents, checkpoints, offsets and keys (keys hash token spans, not
# states), listed from each store's blobs.
structure() { (cd "$1/blobs" && find . -type f -name '*.st' | sed 's|.*/||' | sort); }
if structure "$tmp/gpu-subset" > "$res/structure-gpu.txt" && structure "$tmp/cpu-subset" > "$res/structure-cpu.txt" &&
    diff -q "$res/structure-gpu.txt" "$res/structure-cpu.txt" > /dev/null && [[ -s $res/structure-gpu.txt ]]; then
    summary+=("ok    structure (GPU and CPU bf16 stores: the same $(wc -l < "$res/structure-gpu.txt") checkpoint keys)")
else
    diff "$res/structure-gpu.txt" "$res/structure-cpu.txt" >> "$log" 2>&1
    summary+=("FAIL  structure (the diff is in the log)")
    failures=$((failures + 1))
fi

# 4. The largest shape last, with what time is left.
[[ $quick == 1 ]] || step bench-7.2b 200 "$bin/fold-bench" --shape 7.2b --device "$device" --lanes 32 --tokens 2048 --decode-tokens 32 --repeats 1 --tmp "$tmp" --json --threads 16

rm -rf "$tmp"
{
    echo "== summary ($failures failed)"
    printf '%s\n' "${summary[@]}"
} | tee -a "$log" | tee "$OUT/summary.txt"
exit $((failures > 0))
