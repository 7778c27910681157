#!/usr/bin/env bash
# What building and running the images needs on a Debian machine without a Docker engine:
# rootful podman with the runc runtime, podman-compose, debootstrap for the base image, and a
# containers.conf that lowers the default ulimits to what the machine allows.
# Idempotent; run as root (make container-deps). Nothing here is needed where Docker runs.
set -euo pipefail
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  echo "docker answers: nothing to install"; exit 0
fi
missing=""
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing netavark aardvark-dns >/dev/null
fi
# crun refuses this machine's hybrid cgroups; podman's default nofile (1048576) is above the
# limit the machine allows a container. Lower limits, still far above what the services use.
mkdir -p /etc/containers/containers.conf.d
cat > /etc/containers/containers.conf.d/50-imsearch.conf <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
echo "podman $(podman --version | awk '{print $3}') with runc; $(command -v debootstrap)"
