#!/usr/bin/env bash
# The images prewheel's portable-wheel (cibuildwheel) tests run in: the manylinux-layout and
# Debian trixie images of scripts/test-images.sh (see there), with the bookworm images they
# derive from.
# Usage: scripts/portable-test-images.sh [ARCH ...]   (default: arm64 armhf)
set -euo pipefail
archs=("$@")
[ "${#archs[@]}" -gt 0 ] || archs=(arm64 armhf)
list=$(IFS=,; echo "${archs[*]}")
exec bash "$(dirname "${BASH_SOURCE[0]}")/test-images.sh" --portable "$list" "${archs[@]}"
