#!/usr/bin/env bash
# Run HERE (a Debian/Ubuntu machine with apt and network), before lending a GPU:
# downloads the .deb files of the build dependencies the device image lacks
# into .gpukit/ at the repository root, for tools/gpu_session.sh to unpack on
# the device (which can fetch nothing). .gpukit/ is ignored by git (.gitignore
# and .git/info/exclude) and travels with `run`'s carry: [".gpukit"].
#
#   bash tools/gpu_kit.sh            # then: run(command="bash tools/gpu_session.sh", carry=[".gpukit"])
#
# Header-only: nlohmann-json3-dev, libcli11-dev, libeigen3-dev, doctest-dev.
# Google Benchmark: libbenchmark-dev and its runtime library package (found
# from libbenchmark-dev's Depends). Not downloaded: anything the device image
# has (g++, CMake, ninja, nvcc, Python). The debs are unpacked with dpkg -x
# into a private prefix there (never into /), so their dependencies on
# pkg-config etc. do not matter.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit="$root/.gpukit"
pkgs=(nlohmann-json3-dev libcli11-dev libeigen3-dev doctest-dev libbenchmark-dev)

command -v apt-get >/dev/null || { echo "gpu_kit: apt-get not found (needs a Debian/Ubuntu machine)" >&2; exit 1; }
# The device is x86-64: on another architecture, amd64 package lists of their own (the device README's recipe).
apt_opts=()
[ "$(id -u)" -eq 0 ] && apt_opts+=(-o APT::Sandbox::User=root)  # root: no "_apt cannot access" warning
if [ "$(dpkg --print-architecture)" != amd64 ]; then
  mkdir -p /tmp/amd64/partial
  apt_opts+=(-o APT::Architecture=amd64 -o APT::Architectures=amd64 -o Dir::State::Lists=/tmp/amd64)
  apt-get "${apt_opts[@]}" update
fi
# The runtime library of Google Benchmark (libbenchmark1debian on Debian 12, libbenchmark1.8 on newer releases).
runtime_of() { apt-cache "${apt_opts[@]}" depends libbenchmark-dev 2>/dev/null |
  awk '$1 == "Depends:" && $2 ~ /^libbenchmark[0-9]/ { print $2; exit }'; }
runtime=$(runtime_of)
if [ -z "$runtime" ]; then
  echo "gpu_kit: libbenchmark-dev unknown to apt-cache: apt-get update" >&2
  apt-get "${apt_opts[@]}" update >/dev/null
  runtime=$(runtime_of)
fi
[ -n "$runtime" ] || { echo "gpu_kit: cannot find libbenchmark-dev's runtime package with apt-cache" >&2; exit 1; }
pkgs+=("$runtime")

# Never committed: ignored by .gitignore and by this clone's info/exclude.
grep -qxF '/.gpukit/' "$root/.gitignore" 2>/dev/null || echo '/.gpukit/' >>"$root/.gitignore"
exclude=$(git -C "$root" rev-parse --git-path info/exclude 2>/dev/null) || exclude=""
if [ -n "$exclude" ]; then
  case "$exclude" in /*) ;; *) exclude="$root/$exclude" ;; esac
  mkdir -p "$(dirname "$exclude")"
  grep -qxF '/.gpukit/' "$exclude" 2>/dev/null || echo '/.gpukit/' >>"$exclude"
fi

rm -rf "$kit"
mkdir -p "$kit"
# The device machine gets the working tree without .git: its build reads the
# source revision from here (tools/source_revision.cmake). Make the kit just
# before the device call, so this is the tree the device runs.
{ git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown; } | tr -d '\n' >"$kit/SOURCE_REVISION"
[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] || printf -- -dirty >>"$kit/SOURCE_REVISION"
echo " (recorded by tools/gpu_kit.sh, working tree at $(date -u +%Y-%m-%dT%H:%MZ))" >>"$kit/SOURCE_REVISION"
(cd "$kit" && apt-get "${apt_opts[@]}" download "${pkgs[@]}") || {
  echo "gpu_kit: apt-get download failed (try: apt-get update)" >&2; exit 1; }
# What is in the kit, for the session log.
for deb in "$kit"/*.deb; do dpkg-deb -f "$deb" Package Version Architecture | paste -sd' '; done >"$kit/MANIFEST"
if command -v git >/dev/null && (cd "$root" && git check-ignore -q .gpukit/MANIFEST); then
  echo "gpu_kit: .gpukit/ is ignored by git"
else
  echo "gpu_kit: WARNING: .gpukit/ is not ignored by git; do not commit it" >&2
fi
cat "$kit/MANIFEST"
bytes=$(du -sb "$kit" | cut -f1)
echo "gpu_kit: ${#pkgs[@]} packages, $((bytes / 1024)) KiB in $kit (the carry limit is 64 MiB with the working tree)"
