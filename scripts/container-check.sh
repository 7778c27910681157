#!/usr/bin/env bash
# Can a container engine run the project's containers here? Prints one line and exits:
#   0  yes: a trivial container ran on a network with DNS, as compose's containers do;
#   1  no engine can run here at all (none installed, no privileges, no cgroups): make test
#      skips the compose smoke and says why;
#   2  the engine runs but its set-up is broken — a program it runs is missing or a
#      networked container fails: make test fails, naming what is missing.
# The trivial container is an image of the host's own /bin/true and the libraries it loads
# (imported, never pulled), so the check needs no registry and takes a few seconds.
set -uo pipefail
cd "$(dirname "$0")"
# shellcheck source=container-programs.sh
. ./container-programs.sh
ENGINE=${ENGINE:-$(command -v podman || command -v docker || true)}
PROBE_IMAGE=localhost/imsearch-probe:latest
PROBE_NETWORK=imsearch-probe
if [ -z "$ENGINE" ]; then echo "no container engine (podman or docker) is installed"; exit 1; fi
kind=$(basename "$ENGINE")
if [ "$kind" = podman ] && [ "$(id -u)" != 0 ]; then
  echo "podman runs rootful here (runc, bridge networking): run as root"; exit 1
fi
if ! out=$("$ENGINE" info 2>&1 >/dev/null); then
  echo "$kind cannot run here: $(echo "$out" | tail -1)"; exit 1
fi
if [ "$kind" = podman ] && missing=$(container_missing) && [ -n "$missing" ]; then
  echo "$missing" | awk -F'\t' '{ printf "%s%s (package %s; run by %s)", (NR > 1 ? "; " : "missing: "), $1, $2, $3 }
    END { print ": make container-deps installs it" }'
  exit 2
fi

probe_image() {
  "$ENGINE" image inspect "$PROBE_IMAGE" >/dev/null 2>&1 && return 0
  local true_bin files
  true_bin=$(command -v true) || true_bin=/usr/bin/true
  [ -x "$true_bin" ] || true_bin=/bin/true
  # the binary, its loader and libraries (ldd's "=> /path" and the bare loader path)
  files=$( { echo "$true_bin"; ldd "$true_bin" 2>/dev/null | grep -o '/[^ ]*'; } | sort -u | sed 's|^/||')
  # shellcheck disable=SC2086
  tar -C / -ch $files 2>/dev/null | "$ENGINE" import --change "CMD [\"/$(echo "$true_bin" | sed 's|^/||')\"]" - "$PROBE_IMAGE" >/dev/null
}

if ! out=$(probe_image 2>&1); then
  echo "$kind cannot import a local image: $(echo "$out" | tail -1)"; exit 2
fi
"$ENGINE" network inspect "$PROBE_NETWORK" >/dev/null 2>&1 \
  || "$ENGINE" network create "$PROBE_NETWORK" >/dev/null 2>&1 || true
if ! out=$("$ENGINE" run --rm --network "$PROBE_NETWORK" "$PROBE_IMAGE" 2>&1); then
  echo "a container with networking does not run: $(echo "$out" | grep -v '^$' | tail -1)"; exit 2
fi
exit 0
