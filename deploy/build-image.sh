#!/usr/bin/env bash
# Builds the image sessionplane:local from this checkout, with no registry: a release build,
# then a FROM-scratch image holding the binary and the shared libraries it links.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin sessionplane
binary=target/release/sessionplane
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
