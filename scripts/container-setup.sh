#!/usr/bin/env bash
# What building and running the images needs on a Debian machine without a Docker engine:
# rootful podman with the runc runtime and every program it runs at run time (conmon,
# netavark, aardvark-dns, the firewall netavark programs: see container-programs.sh),
# debootstrap for the base image, and a containers.conf that lowers the default ulimits to
# what the machine allows. Checks each program, not only podman: a machine can have podman
# and still lack what its first networked container runs.
# Idempotent; run as root (make container-deps). Nothing here is needed where Docker runs.
set -euo pipefail
cd "$(dirname "$0")"
# shellcheck source=container-programs.sh
. ./container-programs.sh
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  echo "docker answers: nothing to install"; exit 0
fi

install_missing() {
  local packages
  packages=$(container_missing | cut -f2 | sort -u | tr '\n' ' ')
  [ -n "${packages// }" ] || return 0
  echo "installing for containers: $packages"
  [ "$(id -u)" = 0 ] || { echo "not root: cannot install $packages" >&2; return 1; }
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
}

# Twice: which firewall netavark drives is known only once netavark is installed.
install_missing
install_missing
if missing=$(container_missing) && [ -n "$missing" ]; then
  echo "still missing after installing: $(echo "$missing" | cut -f1 | tr '\n' ' ')" >&2; exit 1
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
echo "podman $(podman --version | awk '{print $3}') with runc, $(netavark_firewall) for netavark; $(command -v debootstrap)"
