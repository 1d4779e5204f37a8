#!/usr/bin/env bash
# A real one-machine Slurm cluster that runs a sharded ingest of INPUT into STORE with N array
# tasks, the way pipelines/slurm/ runs it on a cluster: for tests and demos.
#
#   scripts/slurm-local.sh INPUT STORE N [rwkv-ingest arguments...]
#
# Installs Debian's slurm-wlm and munge when they are missing (needs root, as slurmd does),
# writes munge's key and a slurm.conf for this host into a temporary directory, starts munged,
# slurmctld and slurmd there, submits pipelines/slurm/submit.sh (the array job and the merge job
# that waits for it), waits, and prints the merge's JSON summary on its last line. On exit, also
# on failure or Ctrl-C, it stops the daemons it started (by their pids, no others) and removes
# the temporary directory.
#
# Environment:
#   RWKV_INGEST        rwkv-ingest binary (default: target/release/rwkv-ingest, else on PATH)
#   RWKV_SHARDS        where the shard stores go (default: STORE.shards)
#   RWKV_SLURM_CANCEL  I: cancel array task I (scancel) once it has written a checkpoint and
#                      before it is complete, check its shard is left incomplete, then submit
#                      again, as an operator would after a lost node; the fault test uses this
#   RWKV_SLURM_KEEP=1  keep the temporary directory (logs, slurm.conf) for a post-mortem
#
# Exit status: 0 when the merge succeeded; 1 when a job failed (its log is printed); 2 on bad
# arguments or when Slurm cannot be installed or started.
set -euo pipefail

die() {
    echo "slurm-local: $*" >&2
    exit 2
}
[ $# -ge 3 ] || die "usage: slurm-local.sh INPUT STORE N [rwkv-ingest arguments...]"
[ -e "$1" ] || die "input $1 does not exist"
input=$(realpath "$1")
store=$(realpath -m "$2")
count=$3
shift 3
case $count in '' | *[!0-9]* | 0) die "N must be a positive number of array tasks, not '$count'" ;; esac
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shards=$(realpath -m "${RWKV_SHARDS:-$store.shards}")
ingest=${RWKV_INGEST:-$repo/target/release/rwkv-ingest}
if [ ! -x "$ingest" ]; then
    ingest=$(command -v rwkv-ingest) || die "no rwkv-ingest: build it (cargo build --release) or set RWKV_INGEST"
fi
ingest=$(realpath "$ingest")
[ "$(id -u)" = 0 ] || die "slurmd runs as root: run this as root (or under sudo)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-local: installing slurm-wlm and munge (Debian packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >&2 ||
        die "could not install slurm-wlm and munge with apt-get"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rwkv-slurm.XXXXXX")
chmod 711 "$tmp"
stop_daemons() {
    local name pid
    for name in slurmd slurmctld munged; do
        [ -s "$tmp/$name.pid" ] || continue
        pid=$(cat "$tmp/$name.pid")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [ "${RWKV_SLURM_KEEP:-0}" = 1 ]; then
        echo "slurm-local: kept $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap stop_daemons EXIT
trap 'exit 130' INT TERM

# munge: a fresh key and a socket of our own, so that a system munged is neither used nor touched.
head -c 1024 /dev/urandom >"$tmp/munge.key"
chmod 400 "$tmp/munge.key"
munged --force --socket="$tmp/munge.sock" --key-file="$tmp/munge.key" --log-file="$tmp/munged.log" \
    --pid-file="$tmp/munged.pid" --seed-file="$tmp/munged.seed" || die "munged did not start ($tmp/munged.log)"

host=$(hostname -s)
port=$((20000 + RANDOM % 20000))
mkdir -p "$tmp/ctld" "$tmp/spool"
cat >"$tmp/slurm.conf" <<EOF
ClusterName=rwkvlocal
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=socket=$tmp/munge.sock
CredType=cred/munge
StateSaveLocation=$tmp/ctld
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
KillWait=5
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$tmp/slurm.conf"
# Site settings of a system Slurm must not leak into this cluster's jobs.
unset SBATCH_PARTITION SBATCH_ACCOUNT SBATCH_TIMELIMIT SLURM_JOB_ID SLURM_ARRAY_JOB_ID

slurmctld -i || die "slurmctld did not start ($tmp/slurmctld.log)"
slurmd || die "slurmd did not start ($tmp/slurmd.log)"
for _ in $(seq 300); do
    state=$(sinfo -h -N -o %t 2>/dev/null || true)
    case $state in idle*) break ;; esac
    sleep 0.1
done
case ${state:-} in idle*) ;; *)
    cat "$tmp/slurmctld.log" "$tmp/slurmd.log" >&2 2>/dev/null || true
    die "the node did not come up (state '${state:-none}')"
    ;;
esac
echo "slurm-local: cluster up on $host ($(nproc) CPUs), slurm.conf in $tmp" >&2

export RWKV_INGEST="$ingest"
submit() {
    "$repo/pipelines/slurm/submit.sh" "$count" "$shards" "$store" "$input" "$@"
}
# Waits until every job named leaves the queue.
wait_jobs() {
    local job
    for job in "$@"; do
        [ "$job" = none ] && continue
        while [ -n "$(squeue -h -j "$job" -o %i 2>/dev/null)" ]; do sleep 0.2; done
    done
}
field() { # field JOB KEY: one key of `scontrol show job`, first task
    scontrol -o show job "$1" 2>/dev/null | head -n1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

started=$(date +%s%N)
read -r array merge < <(submit "$@" | sed 's/array=\([^ ]*\) merge=\(.*\)/\1 \2/')
echo "slurm-local: array job $array, merge job $merge" >&2

if [ -n "${RWKV_SLURM_CANCEL:-}" ]; then
    victim=$RWKV_SLURM_CANCEL
    vstore="$shards/shard-$victim"
    for _ in $(seq 6000); do
        if [ -n "$(find "$vstore/blobs" -type f 2>/dev/null | head -n1)" ] &&
            ! grep -qs '"complete": *true' "$vstore/shard.json"; then
            scancel "${array}_$victim"
            break
        fi
        grep -qs '"complete": *true' "$vstore/shard.json" && break
        sleep 0.05
    done
    wait_jobs "${array}_$victim"
    if grep -qs '"complete": *true' "$vstore/shard.json"; then
        echo "slurm-local: task $victim completed before it could be cancelled mid-fold; give a larger INPUT" >&2
        exit 1
    fi
    echo "slurm-local: cancelled array task $victim mid-fold ($(find "$vstore/blobs" -type f | wc -l) blobs written)" >&2
    wait_jobs "$array"
    scancel "$merge" 2>/dev/null || true
    wait_jobs "$merge"
    read -r array merge < <(submit "$@" | sed 's/array=\([^ ]*\) merge=\(.*\)/\1 \2/')
    echo "slurm-local: resubmitted: array job $array, merge job $merge" >&2
fi

wait_jobs "$array" "$merge"
mstate=$(field "$merge" JobState)
ms=$((($(date +%s%N) - started) / 1000000))
elapsed=$((ms / 1000)).$(printf %03d $((ms % 1000)))
echo "slurm-local: merge job $merge $mstate after ${elapsed}s" >&2
if [ "$mstate" != COMPLETED ]; then
    for log in "$shards"/logs/*; do
        echo "--- $log" >&2
        tail -n 20 "$log" >&2
    done
    exit 1
fi
tail -n 1 "$shards/logs/merge-$merge.out"
