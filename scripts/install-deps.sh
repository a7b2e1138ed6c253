#!/usr/bin/env bash
# Installs exactly what cleave's build and tests need, from Debian 12 (bookworm) packages.
# Idempotent: packages already present are skipped by apt. CUDA and NCCL are not
# installed here; the build picks them up from /usr/local/cuda when nvcc is present.
set -euo pipefail

die() { echo "install-deps: $*" >&2; exit 1; }

[[ -r /etc/os-release ]] || die "cannot read /etc/os-release; only Debian 12 / Ubuntu 22.04+ are supported"
. /etc/os-release
case "${ID:-}:${VERSION_ID:-}" in
  debian:12 | debian:13 | ubuntu:22.04 | ubuntu:24.04) ;;
  *) case "${ID_LIKE:-}" in
       *debian*) echo "install-deps: ${PRETTY_NAME:-unknown} is untested; trying Debian package names" >&2 ;;
       *) die "unsupported OS '${PRETTY_NAME:-unknown}': cleave builds from Debian 12 packages (apt required)" ;;
     esac ;;
esac
command -v apt-get >/dev/null || die "apt-get not found; cleave's dependencies come from Debian packages"

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "not root and sudo is not installed"
  SUDO="sudo"
fi

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  # RPC and control plane
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  # transfer, collectives, metrics
  libucx-dev libgloo-dev prometheus-cpp-dev
  # compute
  libopenblas-dev
  # utilities
  libspdlog-dev libyaml-cpp-dev nlohmann-json3-dev libsentencepiece-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # the independent PyTorch reference the model is checked against
  python3 python3-torch python3-numpy
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
