# Shared by the scripts in scripts/: dependency installation and the builds.
# shellcheck shell=bash

MDEC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Debian packages the project needs to build, test, run the demo and the benchmarks.
MDEC_PACKAGES=(
  cmake ninja-build g++ clang lld libclang-rt-14-dev pkg-config python3 python3-yaml time curl openssl zlib1g-dev
  libsimdjson-dev liburiparser-dev libssl-dev libfmt-dev libspdlog-dev libcli11-dev
  libyaml-cpp-dev libsqlite3-dev libcurl4-openssl-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dpkg-dev file systemd   # cpack's .deb (dpkg-shlibdeps), the packaging tests (systemd-analyze)
)

log() { printf '==> %s\n' "$*" >&2; }

# Installs the packages that are missing (apt-get update once, only when needed).
ensure_deps() {
  local missing=()
  local p
  for p in "${MDEC_PACKAGES[@]}"; do
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

# build/: the build the tests, the demo and the integration tests use
# (RelWithDebInfo with AddressSanitizer and UndefinedBehaviorSanitizer).
build_main() {
  log "building build/ (RelWithDebInfo, ASan+UBSan)"
  cmake -S "$MDEC_ROOT" -B "$MDEC_ROOT/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMDEC_SANITIZE=ON -DMDEC_WERROR=ON "$@" >/dev/null
  cmake --build "$MDEC_ROOT/build" -j "$(jobs)"
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
