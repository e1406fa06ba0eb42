# Make a local Python 3.11 base image from Debian's packages when no registry can be pulled from.
# Sourced by ./dev. The image is what `FROM` names in the e2e tests' builds (ENVIRONMENT: no
# registry here, so python:3.11-slim cannot be pulled; debootstrap + docker import takes ~40 s).

BASE_IMAGE="${SLIPWAY_BASE_IMAGE:-slipway/python:3.11-bookworm}"

debian_mirror() {
    local uri
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
    [ -n "$uri" ] || uri=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    echo "${uri:-http://deb.debian.org/debian}"
}

base_image_up() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        say "base image $BASE_IMAGE is present"; return 0
    fi
    mkdir -p "$ENGINE_DIR"
    command -v debootstrap >/dev/null || apt_install debootstrap || return 1
    local rootfs
    rootfs=$(mktemp -d)
    say "building base image $BASE_IMAGE with debootstrap (about a minute)"
    if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
            bookworm "$rootfs" "$(debian_mirror)" >"$ENGINE_DIR/debootstrap.log" 2>&1; then
        say "debootstrap failed; last lines of $ENGINE_DIR/debootstrap.log:"
        tail -5 "$ENGINE_DIR/debootstrap.log"; rm -rf "$rootfs"; return 1
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' - "$BASE_IMAGE" >/dev/null
    local status=$?
    rm -rf "$rootfs"
    return $status
}
