#!/usr/bin/env bash
# Builds the image sessionplane:local from this checkout, with no registry: a release build (or
# the debug one, see below), then a FROM-scratch image holding the binary and the shared
# libraries it links; and sessionplane-whoami:local, the example application the compose
# deployment puts behind the nodes' reverse proxy; and sessionplane-mail:local, the Dovecot +
# Postfix pair behind their mail listeners (deploy/build-mail-image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# SESSIONPLANE_IMAGE_PROFILE=debug packs the debug build instead (deploy/test-compose.sh: the
# test suite has already made it, and the compose test checks behaviour, not speed).
profile=${SESSIONPLANE_IMAGE_PROFILE:-release}
case $profile in
    release) cargo build --release --bin sessionplane --example whoami ;;
    debug) cargo build --bin sessionplane --example whoami ;;
    *) echo "SESSIONPLANE_IMAGE_PROFILE must be release or debug, not $profile" >&2; exit 2 ;;
esac

# pack IMAGE BINARY DEST: an image FROM scratch holding BINARY at DEST, the libraries it links
# and the dynamic loader, with deploy/Dockerfile (sessionplane) or a plain entrypoint (the app).
pack() {
    local image=$1 binary=$2 dest=$3 context
    context=$(mktemp -d)
    mkdir -p "$context/rootfs$(dirname "$dest")" "$context/rootfs/etc/sessionplane" \
        "$context/rootfs/tmp" "$context/data"
    cp "$binary" "$context/rootfs$dest"
    chmod 1777 "$context/rootfs/tmp"
    for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
        cp --parents -L "$lib" "$context/rootfs"
    done
    if [ "$image" = sessionplane:local ]; then
        cp deploy/Dockerfile "$context/Dockerfile"
    else
        printf 'FROM scratch\nCOPY rootfs/ /\nUSER 10001:10001\nEXPOSE 8000\nENTRYPOINT ["%s"]\n' \
            "$dest" > "$context/Dockerfile"
    fi
    docker build -q -t "$image" "$context" >/dev/null
    rm -rf "$context"
    echo "built $image"
}
pack sessionplane:local "target/$profile/sessionplane" /usr/local/bin/sessionplane
# The example application behind the nodes' /app/ route (examples/whoami.rs).
pack sessionplane-whoami:local "target/$profile/examples/whoami" /usr/local/bin/whoami
# The mail pair behind the nodes' IMAP and submission listeners (deploy/mail/): Dovecot and
# Postfix from Debian's packages on a debootstrapped base image, which is kept between runs.
deploy/build-mail-image.sh
