#!/bin/sh
# Build a local stand-in for python:3.11-slim-bookworm from Debian's own packages, for Docker hosts
# that cannot reach Docker Hub, and import it as an image:
#
#   sudo docker/local_base.sh [TAG]        # prints the tag it built (or found) on the last line
#   docker compose build --build-arg BASE_IMAGE=<that tag>   (or BASE_IMAGE=<tag> in .env)
#
# What it holds: a minimal Debian bookworm (debootstrap --variant=minbase) with Debian's Python 3.11
# and a virtual environment at /opt/python that is first on PATH, so `python` and `pip` are what
# docker/Dockerfile expects from the official image (which has them in /usr/local/bin); apt points
# at deb.debian.org, as in the official image. The CA certificates added on the host (in
# /usr/local/share/ca-certificates) are added to the base too, and pip uses the system store. Needs root, debootstrap and a reachable Debian mirror
# (DEBIAN_MIRROR, default http://deb.debian.org/debian). DOCKER (default: docker) is the client to
# import with; set DOCKER_HOST for a private daemon.
#
# The tag defaults to mutransfer-base:bookworm-py3.11-<hash of this script>; when an image with that
# tag already exists the script does nothing, so reruns are instant and a change here rebuilds it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}
# The host's own added CA certificates go into the base (see below), so they are inputs too.
key=$(cat "$0" /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-12)
tag=${1:-mutransfer-base:$suite-py3.11-$key}

if $docker image inspect "$tag" >/dev/null 2>&1; then
    echo "local base: $tag already built" >&2
    echo "$tag"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "local_base.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "local_base.sh: install debootstrap (apt-get install debootstrap)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/mutransfer-base.XXXXXX)
rootfs=$work/rootfs
cleanup() {
    rc=$?
    # debootstrap mounts /proc and /sys inside the target; never leave them mounted
    for m in proc sys dev/pts; do umount "$rootfs/$m" 2>/dev/null || true; done
    if [ "$rc" -ne 0 ] && [ -f "$rootfs/debootstrap/debootstrap.log" ]; then
        echo "local base: failed; the end of debootstrap's log:" >&2
        tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "local base: debootstrap $suite from $mirror into $rootfs" >&2
nice -n 19 debootstrap --variant=minbase --include=python3.11,ca-certificates \
    "$suite" "$rootfs" "$mirror" >&2

# The official image's apt sources (main, updates, security), and its lean apt settings.
cat > "$rootfs/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    > "$rootfs/etc/apt/apt.conf.d/docker-no-recommends"

# Debian's venv module (python3.11-venv and the pip/setuptools wheels it installs from), with apt
# inside the new root filesystem (debootstrap's own --include cannot configure it on minbase).
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
nice -n 19 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$rootfs" apt-get update -qq >&2
nice -n 19 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get install -y -qq python3.11-venv >&2

# The CA certificates the host's administrator added (/usr/local/share/ca-certificates, e.g. for a
# TLS-inspecting proxy in front of PyPI): the base trusts what the host trusts, and pip uses the
# system store (PIP_CERT), so `pip install` in docker/Dockerfile works where it works on the host.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    nice -n 19 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot "$rootfs" update-ca-certificates >&2
fi

# python/pip on PATH as in the official image: a venv from Debian's python3.11 (Debian's own
# python refuses `pip install` outside a venv, PEP 668).
nice -n 19 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$rootfs" /usr/bin/python3.11 -m venv /opt/python >&2
nice -n 19 env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt chroot "$rootfs" /opt/python/bin/python -m pip install -q --no-cache-dir --upgrade pip >&2 \
    || echo "local base: pip upgrade failed (no PyPI?); keeping Debian's bundled pip" >&2
: > "$rootfs/etc/resolv.conf"  # the container runtime provides its own

# Lean: no apt lists, caches, docs or man pages (as the slim image).
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log "$rootfs"/tmp/*
for m in proc sys dev/pts; do umount "$rootfs/$m" 2>/dev/null || true; done

echo "local base: importing as $tag" >&2
tar --numeric-owner -C "$rootfs" -c . | $docker import \
    --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    --message "mutransfer local base: debootstrap $suite minbase + python3.11 venv (docker/local_base.sh)" \
    - "$tag" >&2
echo "$tag"
