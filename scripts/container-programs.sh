# shellcheck shell=bash
# What rootful podman runs at *run time* on Debian, and the package that ships each program.
# Sourced by container-setup.sh (which installs what is missing) and container-check.sh
# (which names it). Read off the programs themselves, not off a machine that has them:
#   podman   execs conmon (containers.conf conmon_path), the OCI runtime (runc, set by
#            container-setup.sh) and the network backend, netavark, from helper_binaries_dir;
#   netavark starts aardvark-dns for every network with DNS (compose's networks: the service
#            names resolve through it) and, in Debian bookworm's 1.4, programs its firewall
#            through the iptables crate, which execs `iptables` and `ip6tables` (both, even
#            with IPv6 off) — Debian's podman only *suggests* iptables, so a new machine lacks
#            it and the first RUN of a build fails with "netavark: No such file or directory";
#            netavark >= 1.9 may use nftables instead (containers.conf firewall_driver or
#            NETAVARK_FW), which execs `nft`;
#   the base image is made with debootstrap (scripts/base-image.sh).
# Rootless helpers (slirp4netns/pasta, newuidmap, fuse-overlayfs) are not needed: the
# containers run rootful here.

#: Where podman looks for netavark and aardvark-dns (containers.conf helper_binaries_dir).
CONTAINER_HELPER_DIRS="/usr/local/libexec/podman /usr/local/lib/podman /usr/libexec/podman /usr/lib/podman"

# Prints the path of a helper binary, or nothing.
container_helper() {
  local dir
  for dir in $CONTAINER_HELPER_DIRS; do
    if [ -x "$dir/$1" ]; then echo "$dir/$1"; return 0; fi
  done
  return 1
}

# The firewall driver netavark will use here: iptables or nftables.
netavark_firewall() {
  local conf driver version netavark
  driver=${NETAVARK_FW:-}
  if [ -z "$driver" ]; then
    for conf in /etc/containers/containers.conf /etc/containers/containers.conf.d/*.conf; do
      [ -f "$conf" ] || continue
      driver=$(sed -n 's/^[[:space:]]*firewall_driver[[:space:]]*=[[:space:]]*"\([a-z]*\)".*/\1/p' "$conf" | tail -1)
      [ -n "$driver" ] && break
    done
  fi
  if [ -z "$driver" ] && netavark=$(container_helper netavark); then
    version=$("$netavark" --version 2>/dev/null | awk '{print $2}')
    # nftables became a build-time default option in 1.9; before, iptables was the only one.
    case "$version" in 1.[0-8].*) driver=iptables ;; *) driver=unknown ;; esac
  fi
  echo "${driver:-iptables}"
}

# One line per program the engine needs here: NAME<TAB>PACKAGE<TAB>WHO RUNS IT.
container_needs() {
  printf '%s\t%s\t%s\n' \
    podman podman "the container engine" \
    conmon conmon "podman, for every container" \
    runc runc "podman (its OCI runtime here)" \
    netavark netavark "podman, to network every container and build step" \
    aardvark-dns aardvark-dns "netavark, for DNS on compose networks" \
    debootstrap debootstrap "scripts/base-image.sh"
  case "$(netavark_firewall)" in
    iptables)
      printf '%s\t%s\t%s\n' iptables iptables "netavark's iptables firewall driver" \
        ip6tables iptables "netavark's iptables firewall driver" ;;
    nftables) printf '%s\t%s\t%s\n' nft nftables "netavark's nftables firewall driver" ;;
    none) ;;
    *)  # a netavark this file does not know: it may use either
      printf '%s\t%s\t%s\n' iptables iptables "netavark's firewall (iptables driver)" \
        ip6tables iptables "netavark's firewall (iptables driver)" \
        nft nftables "netavark's firewall (nftables driver)" ;;
  esac
}

# Is PROGRAM there? Helpers are looked up where podman looks, the rest on PATH.
container_has() {
  case "$1" in
    netavark|aardvark-dns) container_helper "$1" >/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

# The needs that are missing, in the format of container_needs.
container_missing() {
  local name package why
  while IFS=$'\t' read -r name package why; do
    container_has "$name" || printf '%s\t%s\t%s\n' "$name" "$package" "$why"
  done < <(container_needs)
}
