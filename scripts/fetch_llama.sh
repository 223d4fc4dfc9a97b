#!/usr/bin/env bash
# Fetches the pinned llama.cpp source into third_party/llama.cpp (git-ignored).
#
# No Debian 12 package has llama.cpp; the npm package node-llama-cpp ships the llama.cpp
# release it binds to as a git bundle (llama/gitRelease.bundle). We pin the npm version,
# the tarball's sha256, the bundle's sha256 and the commit the bundle holds, so that every
# checkout builds the same llama.cpp. Then it applies scripts/llama-patches/*.patch in name
# order: fixes of ours to the pinned code (docs/security.md says why each exists), each
# applied once. Idempotent: when the pinned commit is already checked out and the patches are
# in, it does nothing (and needs no network).
#
# Usage: scripts/fetch_llama.sh [--print-commit]
#   FORKCAST_LLAMA_DIR set (or a system llama found by CMake) makes this unnecessary; the
#   script still only touches third_party/.
set -euo pipefail

readonly kNpmPackage="node-llama-cpp"
readonly kNpmVersion="3.22.1"
readonly kTarballSha256="a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f"
readonly kBundleSha256="5f5d1105d5df040738d87b8290e5d17e7362131cdcfdb0831618e0ea528b4a51"
# The bundle holds one squashed commit of the llama.cpp release named in
# llama/llama.cpp.info.json; checking it out by id makes a swapped bundle fail loudly.
readonly kLlamaCommit="de3ff815ea7d559ee917f063901b8986f038abc6"

if [[ "${1:-}" == "--print-commit" ]]; then echo "$kLlamaCommit"; exit 0; fi

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party/llama.cpp"
cache="$root/third_party/npm"

# Applies each patch that is not in yet; a patch that neither applies nor is already in
# means the checkout was edited by hand, and fails loudly rather than building something else.
apply_patches() {  # <llama.cpp checkout>
  local patch
  for patch in "$root"/scripts/llama-patches/*.patch; do
    [[ -e "$patch" ]] || continue
    if git -C "$1" apply --reverse --check "$patch" 2>/dev/null; then
      continue
    fi
    if ! git -C "$1" apply "$patch"; then
      echo "fetch_llama: $patch does not apply to $1; delete $1 to fetch it again" >&2
      exit 1
    fi
    echo "fetch_llama: applied ${patch##*/}"
  done
}

if [[ -d "$dest/.git" ]] && [[ "$(git -C "$dest" rev-parse HEAD 2>/dev/null)" == "$kLlamaCommit" ]]; then
  apply_patches "$dest"
  echo "fetch_llama: third_party/llama.cpp already at ${kLlamaCommit:0:12} (node-llama-cpp $kNpmVersion)"
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "fetch_llama: npm is missing; run scripts/setup.sh (it installs npm)" >&2
  exit 1
fi

mkdir -p "$cache"
tarball="$cache/$kNpmPackage-$kNpmVersion.tgz"
if [[ ! -f "$tarball" ]]; then
  echo "fetch_llama: npm pack $kNpmPackage@$kNpmVersion"
  (cd "$cache" && npm pack --silent "$kNpmPackage@$kNpmVersion" >/dev/null)
fi
actual=$(sha256sum "$tarball" | cut -d' ' -f1)
if [[ "$actual" != "$kTarballSha256" ]]; then
  echo "fetch_llama: $tarball: sha256 $actual, expected $kTarballSha256; refusing it (delete it to fetch again)" >&2
  exit 1
fi

unpack="$cache/unpack"
rm -rf "$unpack" && mkdir -p "$unpack"
tar -xzf "$tarball" -C "$unpack" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json
bundle="$unpack/package/llama/gitRelease.bundle"
actual=$(sha256sum "$bundle" | cut -d' ' -f1)
if [[ "$actual" != "$kBundleSha256" ]]; then
  echo "fetch_llama: llama/gitRelease.bundle: sha256 $actual, expected $kBundleSha256" >&2
  exit 1
fi
release=$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$unpack/package/llama/llama.cpp.info.json")

rm -rf "$dest.tmp"
git clone --quiet --no-checkout "$bundle" "$dest.tmp"
git -C "$dest.tmp" -c advice.detachedHead=false checkout --quiet "$kLlamaCommit"
apply_patches "$dest.tmp"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
rm -rf "$unpack"
echo "fetch_llama: third_party/llama.cpp at ${kLlamaCommit:0:12} (llama.cpp release '$release' from $kNpmPackage $kNpmVersion)"
