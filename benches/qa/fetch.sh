#!/usr/bin/env bash
# Download the ten code bases of the QA retrieval benchmark at pinned
# versions into DEST/<name>/, using only the ordinary registry clients
# (pip, cargo, npm) by package name, Debian's archive for the Go one (the
# Go module proxy is not one of the registries here; Debian's -dev packages
# of Go libraries hold their whole source), the crates.io download of the
# `lua-src` crate for the C one (it vendors Lua's C sources), and Debian's
# source archive for the Java one (Maven Central is not one of the
# registries here); the TypeScript one is rxjs from npm, and the C++ one leveldb's upstream
# release tarball from Debian's source pool.
#
#   usage: benches/qa/fetch.sh DEST
#
# Idempotent: a code base whose DEST/<name>/ directory already exists is
# skipped. Large binary files (images etc.) are deleted from the unpacked
# trees; everything else is kept as released.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi

# ---- pinned versions (keep in sync with benches/qa/README.md) ----
PY_NAME=click
PY_VER=8.1.7
RS_NAME=toml_edit
RS_VER=0.22.22
JS_NAME=express
JS_VER=4.21.2
# two more sets (a second Python and a second JavaScript code base)
PY2_NAME=attrs
PY2_VER=23.2.0
JS2_NAME=commander
JS2_VER=12.1.0
# a Go code base, from Debian's archive (a sixth set, written after all tuning)
GO_NAME=cobra
GO_DEB=golang-github-spf13-cobra-dev
GO_SRC=golang-github-spf13-cobra
GO_VER=1.6.1-1
GO_SHA256=4f5d20855133319beef3c5b49d3c21a0406f270bf94fb4b6f4d406b691283cb2
GO_PATH=usr/share/gocode/src/github.com/spf13/cobra
# a C code base: Lua 5.4.7's interpreter, as vendored by the lua-src crate (a seventh set,
# written after all tuning)
C_NAME=lua
C_CRATE=lua-src
C_CRATE_VER=547.0.0
C_SHA256=1edaf29e3517b49b8b746701e5648ccb5785cde1c119062cbabbc5d5cd115e42
C_PATH=lua-5.4.7
# a Java code base: jsoup's upstream release tarball from Debian's source pool (an eighth set,
# written after all tuning)
JAVA_NAME=jsoup
JAVA_ORIG=jsoup_1.15.3.orig.tar.xz
JAVA_SHA256=052511f0be47511f9b2a17d44fc1eccc4b5373e77cc5a3221e34b6af437e1e2e
JAVA_TOP=jsoup-jsoup-1.15.3
# a TypeScript code base: rxjs from npm, its TypeScript sources (the compiled `dist/` left out; a
# ninth set)
TS_NAME=rxjs
TS_VER=7.8.1
# a C++ code base: leveldb's upstream release tarball from Debian's source pool (a tenth set,
# written after all tuning)
CPP_NAME=leveldb
CPP_ORIG=leveldb_1.23.orig.tar.gz
CPP_SHA256=9a37f8a6174f09bd622bc723b55881dc541cd50747cbd08831c2a82d620f6d76
CPP_TOP=leveldb-1.23

# probes (benches/qa/probes/): more code bases whose questions were written before the tool
# was run on them (2026-12-07), each measured once as it is; smaller than the sets above
PROBE_RS1_NAME=serde_json
PROBE_RS1_VER=1.0.154
PROBE_RS1_SHA256=e7e9cc8b1b85264074fbcc02a88680c4096b1e47df8f739dceb03bf482f04bd6
PROBE_RS2_NAME=semver
PROBE_RS2_VER=1.0.28
PROBE_RS2_SHA256=8a7852d02fc848982e0c167ef163aaff9cd91dc640ba85e263cb1ce46fae51cd
PROBE_GO_NAME=pflag
PROBE_GO_DEB=golang-github-spf13-pflag-dev
PROBE_GO_SRC=golang-github-spf13-pflag
PROBE_GO_VER=1.0.6~git20210604-d5e0c0615ace-1
PROBE_GO_SHA256=bd1c3c2a3e47512a64da02ebea900eb5a3f3c5d386e559d5718a3a935c0ea570
PROBE_GO_PATH=usr/share/gocode/src/github.com/spf13/pflag
PROBE_PY_NAME=requests
PROBE_PY_VER=2.32.3
# axios keeps its dist/ bundles: copies of lib/ that must not crowd the answers
PROBE_JS_NAME=axios
PROBE_JS_VER=1.7.7

# two more probes, their questions written by someone who had not seen the tool's output
# (2026-12-07, later the same day): a Rust crate of lock-free channels and a Python package
PROBE_RS3_NAME=crossbeam-channel
PROBE_RS3_DIR=crossbeam_channel
PROBE_RS3_VER=0.5.17
PROBE_RS3_SHA256=98b0cc327b5bc766e7fda9c9260cc0fa81b43a8e240440422dff70788e3f9ef1
PROBE_PY2_NAME=pyjwt
PROBE_PY2_VER=2.10.1
# and two more the same way: a JavaScript WebSocket library, and Zstandard's C library as the
# zstd-sys crate vendors it (its zstd/lib/ folder: 91 files, 79 thousand lines of C)
PROBE_JS2_NAME=ws
PROBE_JS2_VER=8.18.0
PROBE_C2_NAME=zstd
PROBE_C2_CRATE=zstd-sys
PROBE_C2_VER=2.1.3+zstd.1.5.7
PROBE_C2_SHA256=f729a06d0257428fd9d997ac8db7e1407bd0262ab016b085b36bc52957c0052d

# four more, their questions written by helpers that read only the code (2026-12-07, a later
# session), first measured as written: a Rust crate of byte buffers, a Go HTTP router from
# Debian's archive, a Python template engine, and zlib 1.3.1's C sources as the libz-sys crate
# vendors them (its src/zlib folder: 29 files, 23 thousand lines, 9 thousand of them crc32.h's
# tables)
PROBE_RS4_NAME=bytes
PROBE_RS4_VER=1.9.0
PROBE_RS4_SHA256=325918d6fe32f23b19878fe4b34794ae41fc19ddbe53b10571a4874d44ffd39b
PROBE_GO2_NAME=gorilla_mux
PROBE_GO2_DEB=golang-github-gorilla-mux-dev
PROBE_GO2_SRC=golang-github-gorilla-mux
PROBE_GO2_VER=1.8.0-1
PROBE_GO2_SHA256=0880a4019fe68496a0e0a749c2948c029e489f49edd448bed2fedaba33f848c2
PROBE_GO2_PATH=usr/share/gocode/src/github.com/gorilla/mux
PROBE_PY3_NAME=jinja2
PROBE_PY3_VER=3.1.4
PROBE_C3_NAME=zlib
PROBE_C3_CRATE=libz-sys
PROBE_C3_VER=1.1.20
PROBE_C3_SHA256=d2d16453e800a8cf6dd2fc3eb4bc99b786a9b90c663b8559a5b1a041bf89e472

# Python's standard library as Debian ships it (its two packages, libpython3.11-minimal and
# libpython3.11-stdlib, unpacked into one /usr/lib/python3.11; 2026-12-07): a large store,
# 637 Python files and 16 MB, where one name is often defined in several modules
PROBE_STD_NAME=python_stdlib
PROBE_STD_SRC=python3.11
PROBE_STD_VER=3.11.2-6+deb12u8
PROBE_STD_DEBS="libpython3.11-minimal:f3beaa03994ffedacf73c43a0843d53b062d347115d8af65bee2034552a4e6f9 libpython3.11-stdlib:890b3540dad8a1ccc0deeca025db735bcc82629a76adacbe3b50fcc06ed528ca"
PROBE_STD_PATH=usr/lib/python3.11

# The Rust Programming Language as Debian's rust-doc ships it (2026-12-07): a book of HTML pages,
# with its one-page print.html beside the chapters, the old editions' moved-page notices
# (2018-edition/, second-edition/, first-edition/) and the site's scripts, all under
# DEST/rust_book/book/
PROBE_BOOK_NAME=rust_book
PROBE_BOOK_DEB=rust-doc
PROBE_BOOK_SRC=rustc
PROBE_BOOK_VER=1.63.0+dfsg1-2
PROBE_BOOK_SHA256=96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b
PROBE_BOOK_PATH=usr/share/doc/rust-doc/html/book

# binary files larger than this many bytes are removed from the trees
MAX_BINARY_BYTES=8192

mkdir -p "$1"
DEST=$(cd "$1" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Remove large binary files (those containing a NUL byte) from a tree.
strip_binaries() {
    local dir=$1 f
    while IFS= read -r -d '' f; do
        if python3 -c 'import sys; sys.exit(0 if b"\0" in open(sys.argv[1], "rb").read(65536) else 1)' "$f"; then
            echo "  removing binary file ${f#"$dir"/}"
            rm -f -- "$f"
        fi
    done < <(find "$dir" -type f -size +"${MAX_BINARY_BYTES}"c -print0)
}

summary() {
    local dir=$1
    echo "  -> $dir ($(find "$dir" -type f | wc -l) files, $(du -sb "$dir" | cut -f1) bytes)"
}

# Whether a code base is already in OUT (then it is skipped, saying so).
present() {
    local out=$1 label=$2
    [[ -d "$out" ]] || return 1
    echo "[$label] already present in $out, skipping"
}

# Move an unpacked tree, its large binaries removed, to its place under DEST.
install_tree() {
    local src=$1 out=$2
    strip_binaries "$src"
    mv "$src" "$out"
    summary "$out"
}

# Download URL to FILE and check its SHA-256.
download_checked() {
    local url=$1 sha=$2 file=$3
    curl -fsSL -o "$file" "$url"
    echo "$sha  $file" | sha256sum -c --quiet
}

fetch_python() {
    local PY_NAME=$1 PY_VER=$2
    local out="$DEST/$PY_NAME"
    present "$out" "$PY_NAME $PY_VER" && return
    echo "[$PY_NAME $PY_VER] pip download (sdist)"
    local tmp="$WORK/py-$PY_NAME"
    mkdir -p "$tmp/dl" "$tmp/unpack"
    if pip download --quiet --no-deps --no-binary :all: "$PY_NAME==$PY_VER" -d "$tmp/dl"; then
        tar -xzf "$tmp"/dl/*.tar.gz -C "$tmp/unpack"
    else
        echo "  no sdist, falling back to the wheel"
        rm -rf "$tmp/dl"/*
        pip download --quiet --no-deps --only-binary :all: "$PY_NAME==$PY_VER" -d "$tmp/dl"
        mkdir -p "$tmp/unpack/$PY_NAME-$PY_VER"
        python3 -m zipfile -e "$tmp"/dl/*.whl "$tmp/unpack/$PY_NAME-$PY_VER"
    fi
    local top
    top=$(find "$tmp/unpack" -mindepth 1 -maxdepth 1 -type d | head -n1)
    install_tree "$top" "$out"
}

fetch_rust() {
    local out="$DEST/$RS_NAME"
    present "$out" "$RS_NAME $RS_VER" && return
    echo "[$RS_NAME $RS_VER] cargo vendor (throw-away project)"
    local proj="$WORK/rs"
    mkdir -p "$proj/src"
    : > "$proj/src/lib.rs"
    cat > "$proj/Cargo.toml" <<TOML
[package]
name = "qa-fetch-throwaway"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$RS_NAME = "=$RS_VER"

[workspace]
TOML
    (cd "$proj" && cargo vendor --quiet --versioned-dirs vendor > /dev/null)
    local src="$proj/vendor/$RS_NAME-$RS_VER"
    [[ -d "$src" ]] || { echo "cargo vendor did not produce $src" >&2; exit 1; }
    rm -f "$src/.cargo-checksum.json"
    install_tree "$src" "$out"
}

# An npm package: NAME, VERSION, then folders of the package to leave out (build outputs).
fetch_js() {
    local JS_NAME=$1 JS_VER=$2
    shift 2
    local out="$DEST/$JS_NAME"
    present "$out" "$JS_NAME $JS_VER" && return
    echo "[$JS_NAME $JS_VER] npm pack"
    local tmp="$WORK/js-$JS_NAME"
    mkdir -p "$tmp/unpack"
    local tgz
    tgz=$(cd "$tmp" && npm pack --silent "$JS_NAME@$JS_VER" | tail -n1)
    tar -xzf "$tmp/$tgz" -C "$tmp/unpack"
    local d
    for d in "$@"; do
        rm -rf -- "${tmp:?}/unpack/package/$d"
    done
    install_tree "$tmp/unpack/package" "$out"
}

# An architecture-independent package from Debian's archive (a Go library's -dev package, a
# book): NAME, binary package, source package, version, SHA-256, the package's folder that
# becomes DEST/NAME, and optionally a folder of DEST/NAME to put it in instead.
fetch_deb() {
    local name=$1 deb_name=$2 src=$3 ver=$4 sha=$5 path=$6 into=${7:-}
    local out="$DEST/$name"
    present "$out" "$name $ver" && return
    echo "[$name $ver] Debian package $deb_name"
    local tmp="$WORK/deb-$name"
    mkdir -p "$tmp/x"
    local deb="$tmp/${deb_name}_${ver}_all.deb"
    curl -fsSL -o "$deb" "http://deb.debian.org/debian/pool/main/${src:0:1}/$src/${deb_name}_${ver}_all.deb" \
        || (cd "$tmp" && apt-get download "$deb_name=$ver")
    echo "$sha  $deb" | sha256sum -c --quiet
    dpkg-deb -x "$deb" "$tmp/x"
    if [[ -n "$into" ]]; then
        # the tree goes one folder down, moved in whole so that a failed fetch leaves no DEST/NAME
        mkdir -p "$tmp/out"
        mv "$tmp/x/$path" "$tmp/out/$into"
        install_tree "$tmp/out" "$out"
    else
        install_tree "$tmp/x/$path" "$out"
    fi
}

# Binary packages of one Debian source package for amd64, unpacked into one tree: NAME, source
# package, version, the packages as "package:SHA-256" separated by spaces, and the folder of the
# tree that becomes DEST/NAME.
fetch_debs() {
    local name=$1 src=$2 ver=$3 debs=$4 path=$5
    local out="$DEST/$name"
    present "$out" "$name $ver" && return
    echo "[$name $ver] Debian packages of $src"
    local tmp="$WORK/debs-$name" d
    mkdir -p "$tmp/x"
    for d in $debs; do
        local pkg=${d%%:*} sha=${d##*:}
        local deb="$tmp/${pkg}_${ver}_amd64.deb"
        curl -fsSL -o "$deb" "http://deb.debian.org/debian/pool/main/${src:0:1}/$src/${pkg}_${ver}_amd64.deb" \
            || (cd "$tmp" && apt-get download "$pkg:amd64=$ver" \
                && for f in "$tmp/${pkg}_"*_amd64.deb; do [[ "$f" == "$deb" ]] || mv "$f" "$deb"; done)
        echo "$sha  $deb" | sha256sum -c --quiet
        dpkg-deb -x "$deb" "$tmp/x"
    done
    install_tree "$tmp/x/$path" "$out"
}

# A checked tarball: NAME, what to call it, its URL, its SHA-256, and the folder inside it that
# becomes DEST/NAME.
fetch_tarball() {
    local name=$1 label=$2 url=$3 sha=$4 inside=$5
    local out="$DEST/$name"
    present "$out" "$name $label" && return
    echo "[$name] $label"
    local tmp="$WORK/tar-$name"
    mkdir -p "$tmp/x"
    local file="$tmp/${url##*/}"
    download_checked "$url" "$sha" "$file"
    tar -xf "$file" -C "$tmp/x"
    install_tree "$tmp/x/$inside" "$out"
}

fetch_python "$PY_NAME" "$PY_VER"
fetch_rust
fetch_js "$JS_NAME" "$JS_VER"
fetch_python "$PY2_NAME" "$PY2_VER"
fetch_js "$JS2_NAME" "$JS2_VER"
fetch_deb "$GO_NAME" "$GO_DEB" "$GO_SRC" "$GO_VER" "$GO_SHA256" "$GO_PATH"
fetch_tarball "$C_NAME" "crate $C_CRATE $C_CRATE_VER (its $C_PATH sources)" \
    "https://static.crates.io/crates/$C_CRATE/$C_CRATE-$C_CRATE_VER.crate" "$C_SHA256" "$C_CRATE-$C_CRATE_VER/$C_PATH"
fetch_tarball "$JAVA_NAME" "Debian source $JAVA_ORIG" \
    "http://deb.debian.org/debian/pool/main/${JAVA_NAME:0:1}/$JAVA_NAME/$JAVA_ORIG" "$JAVA_SHA256" "$JAVA_TOP"
fetch_js "$TS_NAME" "$TS_VER" dist
fetch_tarball "$CPP_NAME" "Debian source $CPP_ORIG" \
    "http://deb.debian.org/debian/pool/main/${CPP_NAME:0:1}/$CPP_NAME/$CPP_ORIG" "$CPP_SHA256" "$CPP_TOP"
# the probes
for crate in "$PROBE_RS1_NAME $PROBE_RS1_VER $PROBE_RS1_SHA256" "$PROBE_RS2_NAME $PROBE_RS2_VER $PROBE_RS2_SHA256"; do
    read -r name ver sha <<<"$crate"
    fetch_tarball "$name" "crate $name $ver" \
        "https://static.crates.io/crates/$name/$name-$ver.crate" "$sha" "$name-$ver"
done
fetch_tarball "$PROBE_RS3_DIR" "crate $PROBE_RS3_NAME $PROBE_RS3_VER" \
    "https://static.crates.io/crates/$PROBE_RS3_NAME/$PROBE_RS3_NAME-$PROBE_RS3_VER.crate" "$PROBE_RS3_SHA256" \
    "$PROBE_RS3_NAME-$PROBE_RS3_VER"
fetch_deb "$PROBE_GO_NAME" "$PROBE_GO_DEB" "$PROBE_GO_SRC" "$PROBE_GO_VER" "$PROBE_GO_SHA256" "$PROBE_GO_PATH"
fetch_python "$PROBE_PY_NAME" "$PROBE_PY_VER"
fetch_js "$PROBE_JS_NAME" "$PROBE_JS_VER"
fetch_python "$PROBE_PY2_NAME" "$PROBE_PY2_VER"
fetch_js "$PROBE_JS2_NAME" "$PROBE_JS2_VER"
fetch_tarball "$PROBE_C2_NAME" "crate $PROBE_C2_CRATE $PROBE_C2_VER (its zstd/lib sources)" \
    "https://static.crates.io/crates/$PROBE_C2_CRATE/$PROBE_C2_CRATE-$PROBE_C2_VER.crate" "$PROBE_C2_SHA256" \
    "$PROBE_C2_CRATE-$PROBE_C2_VER/zstd/lib"
fetch_tarball "$PROBE_RS4_NAME" "crate $PROBE_RS4_NAME $PROBE_RS4_VER" \
    "https://static.crates.io/crates/$PROBE_RS4_NAME/$PROBE_RS4_NAME-$PROBE_RS4_VER.crate" "$PROBE_RS4_SHA256" \
    "$PROBE_RS4_NAME-$PROBE_RS4_VER"
fetch_deb "$PROBE_GO2_NAME" "$PROBE_GO2_DEB" "$PROBE_GO2_SRC" "$PROBE_GO2_VER" "$PROBE_GO2_SHA256" "$PROBE_GO2_PATH"
fetch_python "$PROBE_PY3_NAME" "$PROBE_PY3_VER"
fetch_tarball "$PROBE_C3_NAME" "crate $PROBE_C3_CRATE $PROBE_C3_VER (its src/zlib sources)" \
    "https://static.crates.io/crates/$PROBE_C3_CRATE/$PROBE_C3_CRATE-$PROBE_C3_VER.crate" "$PROBE_C3_SHA256" \
    "$PROBE_C3_CRATE-$PROBE_C3_VER/src/zlib"
fetch_debs "$PROBE_STD_NAME" "$PROBE_STD_SRC" "$PROBE_STD_VER" "$PROBE_STD_DEBS" "$PROBE_STD_PATH"
fetch_deb "$PROBE_BOOK_NAME" "$PROBE_BOOK_DEB" "$PROBE_BOOK_SRC" "$PROBE_BOOK_VER" "$PROBE_BOOK_SHA256" "$PROBE_BOOK_PATH" book
echo "done: code bases are in $DEST"
