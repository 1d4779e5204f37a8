#!/usr/bin/env bash
# Submits a sharded ingest to Slurm: an array job of N workers (ingest-array.sbatch), each
# folding shard i of N into SHARDS/shard-i, and a merge job (merge.sbatch) that waits for the
# array (`--dependency=afterok`) and joins the shards into STORE.
#
#   submit.sh N SHARDS STORE [rwkv-ingest arguments...]
#   submit.sh 64 /shared/linux-shards /shared/linux.rwkv --pipeline /shared/jobs/linux.toml
#
# Run it again after a failure or a cancelled task: shards whose shard.json says complete are
# not submitted again (the array holds only the unfinished indices), a shard cut short resumes
# where its store left off, and a new merge job waits for them.
#
# Prints `array=<job id> merge=<job id>` (array is `none` when every shard is complete). Logs go
# to SHARDS/logs/. Site options (partition, account, time, CPUs) come from sbatch's own SBATCH_*
# variables, e.g. SBATCH_PARTITION=cpu SBATCH_TIMELIMIT=2-0; RWKV_INGEST names the binary.
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: submit.sh N SHARDS STORE [rwkv-ingest arguments...]" >&2
    exit 2
fi
count=$1
shards=$2
store=$3
shift 3
case $count in
'' | *[!0-9]* | 0)
    echo "submit.sh: N must be a positive number of shards, not '$count'" >&2
    exit 2
    ;;
esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$shards/logs"

todo=()
for ((i = 0; i < count; i++)); do
    if [ "${FORCE:-0}" = 1 ] || ! grep -qs '"complete": *true' "$shards/shard-$i/shard.json"; then
        todo+=("$i")
    fi
done

array=none
dependency=()
if [ ${#todo[@]} -gt 0 ]; then
    indices=$(IFS=,; echo "${todo[*]}")
    array=$(sbatch --parsable --array="$indices" --export="ALL,RWKV_SHARD_COUNT=$count" \
        --output="$shards/logs/ingest-%A_%a.out" \
        "$here/ingest-array.sbatch" "$shards" "$@")
    array=${array%%;*}
    dependency=(--dependency="afterok:$array" --kill-on-invalid-dep=yes)
fi
merge=$(sbatch --parsable "${dependency[@]}" --output="$shards/logs/merge-%j.out" \
    "$here/merge.sbatch" "$shards" "$store" "$count")
merge=${merge%%;*}
echo "array=$array merge=$merge"
