#!/usr/bin/env bash
# Build the four service images (and a Redis image) with podman or docker, tagged as
# docker-compose.yml expects: imsearch-{extractor,search,rerank,gateway}:latest.
#   BASE_IMAGE  default localhost/imsearch-base:bookworm, built from Debian's packages by
#               scripts/base-image.sh when missing; python:3.11-slim-bookworm where a registry
#               is reachable
#   CA_BUNDLE   a CA bundle pip must trust (TLS-intercepting proxy), passed as a build secret
#   SERVICES    which images (default: all four, then redis; "bulk" builds imsearch-bulk, the
#               image of the Ray bulk job, deploy/k8s/bulk)
#   MIN_FREE_GB free space the engine's storage must have before the extractor build (default
#               25: the build peaks at about three copies of its 6.8 GB environment; 3 for the
#               others); below it, dangling images are pruned first, and if that is not enough
#               a warning says why the build may fail with "no space left on device"
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-$(command -v podman || command -v docker || true)}
[ -n "$ENGINE" ] || { echo "no container engine: install podman (make container-deps) or docker" >&2; exit 2; }
BASE_IMAGE=${BASE_IMAGE:-localhost/imsearch-base:bookworm}
CA_BUNDLE=${CA_BUNDLE:-}
SERVICES=${SERVICES:-search rerank gateway extractor redis}
case "$BASE_IMAGE" in localhost/imsearch-base:*) ENGINE=$ENGINE scripts/base-image.sh "$BASE_IMAGE" ;; esac
args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -n "$CA_BUNDLE" ] && args+=(--secret "id=ca_bundle,src=$CA_BUNDLE")
# podman writes OCI images by default, which drop HEALTHCHECK; docker needs BuildKit for secrets.
case "$(basename "$ENGINE")" in podman) args+=(--format docker) ;; docker) export DOCKER_BUILDKIT=1 ;; esac

storage_dir() {
  case "$(basename "$ENGINE")" in
    podman) "$ENGINE" info --format '{{.Store.GraphRoot}}' ;;
    *) "$ENGINE" info --format '{{.DockerRootDir}}' ;;
  esac
}
free_gb() { df -Pk "$1" | awk 'NR == 2 { print int($4 / 1048576) }'; }

# Rebuilds leave the previous image and build stages behind, untagged; on a machine that builds
# often they fill the disk. Prune them only when space runs short, so the build cache survives.
ensure_space() {
  local need=$1 dir free
  dir=$(storage_dir) || return 0
  mkdir -p "$dir"
  free=$(free_gb "$dir")
  if [ "$free" -lt "$need" ]; then
    echo "only $free GB free in $dir (need $need): pruning dangling images"
    "$ENGINE" image prune --force > /dev/null || true
    free=$(free_gb "$dir")
  fi
  if [ "$free" -lt "$need" ]; then
    # a build that hits the cache needs little: try, but say why it may fail
    echo "warning: only $free GB free in $dir after pruning; a build from scratch needs $need GB" >&2
  fi
}

for service in $SERVICES; do
  case "$service" in extractor|bulk) ensure_space "${MIN_FREE_GB:-25}" ;; *) ensure_space 3 ;; esac
  if [ "$service" = redis ]; then file=docker/redis.Dockerfile tag=imsearch-redis:bookworm
  else file=Dockerfile.$service tag=imsearch-$service:latest; fi
  start=$(date +%s)
  previous=$("$ENGINE" image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  "$ENGINE" build "${args[@]}" -f "$file" -t "$tag" . > "var/build-$service.log" 2>&1 \
    || { tail -30 "var/build-$service.log"; echo "building $tag failed (var/build-$service.log)" >&2; exit 1; }
  size=$("$ENGINE" image inspect --format '{{.Size}}' "$tag")
  # the image this tag pointed at is now untagged: drop it unless a container still uses it
  current=$("$ENGINE" image inspect --format '{{.Id}}' "$tag")
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    "$ENGINE" rmi "$previous" > /dev/null 2>&1 || true
  fi
  echo "$tag: $((size / 1000000)) MB, built in $(( $(date +%s) - start )) s"
done
