#!/usr/bin/env bash
# A minimal Debian bookworm image with Python 3.11, built from Debian's packages alone — for
# machines that reach Debian's mirror but no container registry (python:3.11-slim-bookworm is
# the Dockerfiles' default where one can be pulled). Takes about two minutes.
# Usage: scripts/base-image.sh [TAG]          (default localhost/imsearch-base:bookworm)
set -euo pipefail
TAG=${1:-localhost/imsearch-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ENGINE=${ENGINE:-$(command -v podman || command -v docker)}
if "$ENGINE" image inspect "$TAG" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
  echo "$TAG exists (REBUILD=1 to build it again)"; exit 0
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
# minbase: essential packages and apt; then what the Dockerfiles use: python (venv, pip),
# useradd (passwd), CA certificates for pip behind TLS.
debootstrap --variant=minbase \
  --include=python3,python3-venv,python-is-python3,passwd,ca-certificates \
  bookworm "$root" "$MIRROR" >/dev/null
# Slim like the official -slim images: no docs, manuals or translations, now or later.
cat > "$root/etc/dpkg/dpkg.cfg.d/01-slim" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
CFG
# apt keeps no package caches in an image (as Docker's Debian images configure it): an
# `apt-get update` in a Dockerfile would otherwise leave ~80 MB of *.bin behind.
cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
find "$root/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/archives/*.deb
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/log/* "$root"/tmp/*
tar -C "$root" -c . | "$ENGINE" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$TAG" >/dev/null
echo "$TAG: $("$ENGINE" run --rm "$TAG" python --version)"
