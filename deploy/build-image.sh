#!/usr/bin/env bash
# Builds the image sessionplane:local from this checkout, with no registry: a release build (or
# the debug one, see below), then a FROM-scratch image holding the binary and the shared
# libraries it links.
set -euo pipefail
cd "$(dirname "$0")/.."

# SESSIONPLANE_IMAGE_PROFILE=debug packs the debug build instead (deploy/test-compose.sh: the
# test suite has already made it, and the compose test checks behaviour, not speed).
profile=${SESSIONPLANE_IMAGE_PROFILE:-release}
case $profile in
    release) cargo build --release --bin sessionplane ;;
    debug) cargo build --bin sessionplane ;;
    *) echo "SESSIONPLANE_IMAGE_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac
binary=target/$profile/sessionplane
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT

mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/etc/sessionplane" \
    "$context/rootfs/tmp" "$context/data"
cp "$binary" "$context/rootfs/usr/local/bin/sessionplane"
chmod 1777 "$context/rootfs/tmp"
# Every library the binary links, and the dynamic loader, at the paths it expects.
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    cp --parents -L "$lib" "$context/rootfs"
done
cp deploy/Dockerfile "$context/Dockerfile"
docker build -t sessionplane:local "$context"
echo "built sessionplane:local"
