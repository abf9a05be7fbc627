# Shared by the scripts in scripts/: dependency installation and the builds.
# shellcheck shell=bash

MDEC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages the demo needs: the compiler, the build tools and the libraries
# mdecollect and mde-emulator link (python3-yaml: the index template generator; curl and
# python3: the demo's summary).
MDEC_DEMO_PACKAGES=(
  cmake ninja-build g++ pkg-config python3 python3-yaml curl zlib1g-dev
  libsimdjson-dev liburiparser-dev libssl-dev libfmt-dev libspdlog-dev libcli11-dev
  libyaml-cpp-dev libsqlite3-dev libcurl4-openssl-dev libcpp-httplib-dev libdeflate-dev
)
# ... and what the tests, the fuzzers, the benchmarks and the package need on top.
MDEC_PACKAGES=(
  "${MDEC_DEMO_PACKAGES[@]}"
  clang lld libclang-rt-14-dev clang-format time openssl
  libgtest-dev libgmock-dev libbenchmark-dev
  dpkg-dev file systemd   # cpack's .deb (dpkg-shlibdeps), the packaging tests (systemd-analyze)
)

log() { printf '==> %s\n' "$*" >&2; }

# Installs the packages that are missing (apt-get update once, only when needed): those
# named as arguments, or all of MDEC_PACKAGES.
ensure_deps() {
  local wanted=("$@")
  if [ ${#wanted[@]} -eq 0 ]; then wanted=("${MDEC_PACKAGES[@]}"); fi
  local missing=()
  local p
  for p in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
}

jobs() { nproc 2>/dev/null || echo 2; }

# build/: the demo's build, optimised (Release, hardened as the package is), with only the two
# binaries: build/mdecollect and build/mde-emulator. No tests, no benchmarks.
build_demo() {
  log "building build/mdecollect and build/mde-emulator (Release)"
  cmake -S "$MDEC_ROOT" -B "$MDEC_ROOT/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DMDEC_TESTS=OFF -DMDEC_BENCH=OFF >/dev/null
  cmake --build "$MDEC_ROOT/build" -j "$(jobs)" --target mdecollect mde-emulator
}

# build/test: everything, for the test suite (RelWithDebInfo with AddressSanitizer and
# UndefinedBehaviorSanitizer, warnings as errors): build/test/mdecollect,
# build/test/mde-emulator, build/test/tests/...
build_test() {
  log "building build/test (RelWithDebInfo, ASan+UBSan)"
  cmake -S "$MDEC_ROOT" -B "$MDEC_ROOT/build/test" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMDEC_SANITIZE=ON -DMDEC_WERROR=ON "$@" >/dev/null
  cmake --build "$MDEC_ROOT/build/test" -j "$(jobs)"
}

# build/fuzz: clang with libFuzzer, the library and the fuzz targets only.
build_fuzz() {
  log "building build/fuzz (clang, libFuzzer, ASan+UBSan)"
  CC=clang CXX=clang++ cmake -S "$MDEC_ROOT" -B "$MDEC_ROOT/build/fuzz" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMDEC_FUZZ=ON >/dev/null
  cmake --build "$MDEC_ROOT/build/fuzz" -j "$(jobs)"
}

# build/release: optimised, for the benchmarks.
build_release() {
  log "building build/release (Release)"
  cmake -S "$MDEC_ROOT" -B "$MDEC_ROOT/build/release" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DMDEC_TESTS=OFF >/dev/null
  cmake --build "$MDEC_ROOT/build/release" -j "$(jobs)"
}
