#!/usr/bin/env bash
# Can a container engine run containers here? Exit 0 if so; otherwise print why, in one line,
# and exit 1 (make test then skips the compose smoke and says so).
ENGINE=${ENGINE:-$(command -v podman || command -v docker || true)}
if [ -z "$ENGINE" ]; then echo "no container engine (podman or docker) is installed"; exit 1; fi
if ! out=$("$ENGINE" info 2>&1 >/dev/null); then
  echo "$(basename "$ENGINE") cannot run here: $(echo "$out" | tail -1)"; exit 1
fi
if [ "$(basename "$ENGINE")" = podman ] && [ "$(id -u)" != 0 ]; then
  echo "podman runs rootful here (runc, bridge networking): run as root"; exit 1
fi
exit 0
