# deps.sh: installs what kcopy needs to build and test, from Debian 12's packages.
# Sourced by scripts/demo, scripts/test and scripts/bench; installs only what is missing.

KCOPY_BUILD_PACKAGES=(build-essential meson ninja-build pkg-config libaio-dev liburing-dev libspdlog-dev libcli11-dev
  catch2 scdoc nlohmann-json3-dev libnbd-dev)
KCOPY_TEST_PACKAGES=(util-linux fdisk e2fsprogs python3 fuse3 python3-fusepy nbdkit libnbd-bin gddrescue qemu-utils jq)

# install_packages PKG...: apt-get install the packages that are not installed yet.
install_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if ((EUID != 0)); then
    echo "kcopy: missing packages: ${missing[*]}; run as root (sudo) to install them" >&2
    return 1
  fi
  echo "kcopy: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
}

# build_kcopy [BUILDDIR]: configures (release) and builds kcopy in BUILDDIR (default build).
build_kcopy() {
  local dir=${1:-build}
  [[ -f $dir/build.ninja ]] || meson setup "$dir" --buildtype=release >/dev/null
  ninja -C "$dir" >/dev/null
}
