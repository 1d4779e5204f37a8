#!/usr/bin/env bash
# The CUDA build of rwkv-reader (`--features cuda`), on a machine with no GPU and no CUDA toolkit.
#
#   bash scripts/build-cuda.sh            # prints the folder holding the stripped binaries last
#
# 1. The CUDA compiler pieces come from the Python package registry into .cuda-build/venv, pinned
#    to CUDA 13.0 (the device machines' driver is CUDA 13.0: a newer nvcc writes PTX it may refuse).
# 2. candle-core and candle-kernels are used as copies of the registry's own crates, made in
#    .cuda-build/ with two changes and wired in with `--config patch.crates-io…` (none of candle's
#    source is committed): cudarc's `dynamic-linking` becomes `dynamic-loading` (the driver,
#    cuBLAS, NVRTC are opened at run time), and cudart is linked statically. So the binaries name
#    no CUDA library in NEEDED and start anywhere: without a driver, `--device cuda` is a named
#    error (exit 2), never a loader failure.
# 3. `cargo build --release --features cuda` of rwkv-cli and rwkv-bench into target-cuda/, then
#    the binaries stripped into target-cuda/dist (the device tool carries at most 64 MiB).
#
# Environment: CUDA_COMPUTE_CAP (default 90, the H200), JOBS (cargo -j, default: all cores).
# The first build takes ~15 minutes on 2 cores (candle-kernels' nvcc step); later ones a minute.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work="$root/.cuda-build"
venv="$work/venv"
mkdir -p "$work"

say() { echo "build-cuda: $*" >&2; }

# 1. nvcc, NVRTC and the headers, from PyPI.
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
cuda_home=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia/cu13
if [[ ! -x "$cuda_home/bin/nvcc" ]]; then
    say "installing the CUDA 13.0 compiler pieces from PyPI into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'nvidia-cuda-nvcc==13.0.*' 'nvidia-cuda-crt==13.0.*' 'nvidia-cuda-runtime==13.0.*' \
        'nvidia-cuda-cccl==13.0.*' 'nvidia-nvvm==13.0.*' 'nvidia-cuda-nvrtc==13.0.*'
fi
[[ -x "$cuda_home/bin/nvcc" ]] || { say "no nvcc in $cuda_home after the install"; exit 1; }
export CUDA_HOME="$cuda_home" CUDA_PATH="$cuda_home"
export PATH="$cuda_home/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
say "$(nvcc --version | tail -1)"

# 2. The patched copies of candle-core and candle-kernels.
cargo fetch --locked >/dev/null
registry=$(dirname "$(cargo metadata --format-version 1 --locked --features rwkv-model/cuda 2>/dev/null |
    "$venv/bin/python" -c 'import json,sys; m=json.load(sys.stdin); print(next(p["manifest_path"] for p in m["packages"] if p["name"]=="candle-core"))')")
registry=$(dirname "$registry")
version=$(basename "$(ls -d "$registry"/candle-core-* | sort | tail -1)" | sed 's/candle-core-//')
for crate in candle-core candle-kernels; do
    src="$registry/$crate-$version"
    dst="$work/$crate"
    if [[ ! -f "$dst/.patched-$version" ]]; then
        rm -rf "$dst"
        cp -r "$src" "$dst"
        touch "$dst/.patched-$version"
    fi
done
# cudarc opened at run time, not linked.
sed -i 's/"dynamic-linking",/"dynamic-loading",/' "$work/candle-core/Cargo.toml"
grep -q '"dynamic-loading"' "$work/candle-core/Cargo.toml" || { say "candle-core's cudarc features changed: patch by hand"; exit 1; }
# cudart linked statically (libcudart_static.a is in the wheel's lib/).
sed -i 's/rustc-link-lib=dylib=cudart"/rustc-link-lib=static=cudart_static"/' "$work/candle-kernels/build.rs"
grep -q 'static=cudart_static' "$work/candle-kernels/build.rs" || { say "candle-kernels' link lines changed: patch by hand"; exit 1; }
grep -q 'CUDA_HOME.*lib' "$work/candle-kernels/build.rs" ||
    sed -i 's|println!("cargo:rustc-link-lib=static=cudart_static");|println!("cargo:rustc-link-search=native={}/lib", std::env::var("CUDA_HOME").unwrap_or_default());\n    println!("cargo:rustc-link-lib=static=cudart_static");|' "$work/candle-kernels/build.rs"

# 3. Build and strip. The patches would rewrite Cargo.lock (path entries): keep the committed one.
cp Cargo.lock "$work/Cargo.lock.orig"
trap 'cp "$work/Cargo.lock.orig" "$root/Cargo.lock"' EXIT
export CARGO_TARGET_DIR="$root/target-cuda"
say "cargo build --release --features cuda (CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP, target $CARGO_TARGET_DIR)"
nice cargo build --release ${JOBS:+-j "$JOBS"} \
    --config "patch.crates-io.candle-core.path=\"$work/candle-core\"" \
    --config "patch.crates-io.candle-kernels.path=\"$work/candle-kernels\"" \
    -p rwkv-cli -p rwkv-bench --features rwkv-cli/cuda,rwkv-bench/cuda \
    --bin rwkv-score --bin rwkv-ingest --bin rwkv-ask --bin fold-bench --bin make-model >&2
dist="$CARGO_TARGET_DIR/dist"
mkdir -p "$dist"
for b in rwkv-score rwkv-ingest rwkv-ask fold-bench make-model; do
    strip -o "$dist/$b" "$CARGO_TARGET_DIR/release/$b"
done
if readelf -d "$dist/rwkv-score" | grep NEEDED | grep -Eiq 'cuda|cublas|nvrtc|curand'; then
    say "warning: a CUDA library is in NEEDED: $(readelf -d "$dist/rwkv-score" | grep NEEDED | tr -s ' ' | tr '\n' ' ')"
fi
# What the device tool carries (64 MiB in all, the tree included): the two binaries
# scripts/gpu-check.sh runs, xz-compressed (the PTX candle embeds
# compresses ~6x); scripts/gpu-check.sh unpacks them.
carry="$CARGO_TARGET_DIR/carry"
mkdir -p "$carry"
for b in rwkv-ingest fold-bench; do
    xz -T0 -9 -c "$dist/$b" > "$carry/$b.xz"
done
say "$(du -ch "$dist"/* | tail -1 | cut -f1) in $dist; $(du -ch "$carry"/* | tail -1 | cut -f1) to carry in $carry"
echo "$dist"
