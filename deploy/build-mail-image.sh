#!/usr/bin/env bash
# Builds sessionplane-mail:local, the Dovecot (IMAP) + Postfix (submission) pair the compose
# deployment puts behind the nodes' mail listeners, with no registry: a minimal Debian bookworm
# made by debootstrap with Debian's dovecot-imapd and postfix in it, imported as the base image
# sessionplane-mail-base:bookworm, then deploy/mail/Dockerfile on top (configs, users,
# entrypoint). The base takes a minute or two and is kept: later runs only redo the small image.
#   deploy/build-mail-image.sh                  reuse the base image when it exists
#   deploy/build-mail-image.sh --rebuild-base   make the base again (newer packages)
# (or SESSIONPLANE_MAIL_REBUILD_BASE=1). Needs root, debootstrap (apt-get install debootstrap)
# and Debian's mirror: SESSIONPLANE_DEBIAN_MIRROR, else the first deb.debian.org-style URI of
# this host's apt sources, else http://deb.debian.org/debian.
set -euo pipefail
cd "$(dirname "$0")/.."

base=sessionplane-mail-base:bookworm
image=sessionplane-mail:local
rebuild=${SESSIONPLANE_MAIL_REBUILD_BASE:-0}
case ${1:-} in
    "") ;;
    --rebuild-base) rebuild=1 ;;
    *) echo "usage: $0 [--rebuild-base]" >&2; exit 2 ;;
esac

# The mirror this host's apt uses (deb822 .sources or one-line .list), for the main archive.
host_mirror() {
    cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
        | grep -oE '(URIs:|^deb) +[^ ]*https?://[^ ]*/debian/?( |$)' | grep -oE 'https?://[^ ]*' \
        | head -1 | sed 's:/*$::'
}
mirror=${SESSIONPLANE_DEBIAN_MIRROR:-$(host_mirror || true)}
mirror=${mirror:-http://deb.debian.org/debian}
security=${SESSIONPLANE_DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}

# make_base: debootstrap into a temp dir, install the two servers without starting anything,
# drop what a container does not need, import the tree as $base.
make_base() {
    command -v debootstrap >/dev/null \
        || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    local work root
    work=$(mktemp -d)
    root=$work/rootfs
    # Unmount before deleting, and never delete across a mount (--one-file-system).
    trap 'umount "'"$root"'/proc" 2>/dev/null || true; rm -rf --one-file-system "'"$work"'"' EXIT
    echo "debootstrap bookworm from $mirror (a few minutes)"
    nice debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
    # Nothing starts during the install: invoke-rc.d asks policy-rc.d, 101 is "not allowed".
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    mount -t proc proc "$root/proc"
    in_root() { nice chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
    # (apt's "Can not write log (Is /dev/pts mounted?)" in apt.log is harmless.)
    { in_root apt-get -q update && in_root apt-get -qy upgrade \
        && in_root apt-get -qy install --no-install-recommends dovecot-imapd postfix; } \
        >"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log" >&2; exit 1; }
    in_root apt-get clean
    umount "$root/proc"
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/debconf/*-old \
        "$root"/var/log/*.log "$root"/var/log/apt/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/tmp/* "$root"/root/.bash_history
    find "$root/usr/share/doc" -type f ! -name copyright -delete
    # The host's name and resolver: Docker provides its own in every container.
    : >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
    nice tar --numeric-owner -C "$root" -c . \
        | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' \
            -m "debootstrap --variant=minbase bookworm $mirror + dovecot-imapd postfix" - "$base" >/dev/null
    rm -rf --one-file-system "$work"
    trap - EXIT
    echo "built $base"
}

# The images this run replaces, removed at the end once no tag names them any more.
previous=$(docker image inspect -f '{{.Id}}' "$image" "$base" 2>/dev/null || true)
if [ "$rebuild" = 1 ] || ! docker image inspect "$base" >/dev/null 2>&1; then
    make_base
else
    echo "reusing $base (--rebuild-base to make it again)"
fi
nice docker build -q -t "$image" deploy/mail >/dev/null
echo "built $image"
for id in $previous; do
    if [ "$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null)" = 0 ]; then
        docker image rm "$id" >/dev/null 2>&1 || true
    fi
done
