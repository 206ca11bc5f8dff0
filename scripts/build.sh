#!/usr/bin/env bash
# Installs missing Debian packages (as root, non-interactive) and builds modelzoo into build/ (or $MZ_BUILD_DIR).
# A second run with nothing changed does nothing slow. Usage: scripts/build.sh [cmake -D options...]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake ninja-build g++ ccache pkg-config
  libtorch-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev doctest-dev libcli11-dev
  python3-torch python3-torchvision python3-numpy python3-pil   # the test oracle (Debian's /usr/bin/python3)
  nginx-light curl ca-certificates openssl                       # hub tests and benchmarks
  clang-14 libclang-rt-14-dev                                    # the parsers' sanitizer build, the fuzz targets
  libjpeg62-turbo-dev libpng-dev hyperfine
  libsentencepiece-dev libre2-dev libsndfile1-dev                # text tokenizers, audio decoding
  libideep-dev libdnnl-dev                                       # oneDNN calls LibTorch has no kernel for
  libopenblas0-openmp     # LibTorch's libblas.so.3: OpenBLAS (OpenMP build) instead of netlib's reference BLAS
  python3-torchaudio python3-torchtext python3-sentencepiece python3-regex python3-soundfile  # text/audio oracles
  sentencepiece espeak-ng sox                                    # test data: spm_train, speech, tones
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "build.sh: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
JOBS="${MZ_JOBS:-$(nproc)}"
BUILD="${MZ_BUILD_DIR:-build}"
if [ ! -f "$BUILD/build.ninja" ] || [ "$#" -gt 0 ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
cmake --build "$BUILD" -j "$JOBS"
