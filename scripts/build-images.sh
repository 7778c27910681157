#!/usr/bin/env bash
# Build the four service images (and a Redis image) with podman or docker, tagged as
# docker-compose.yml expects: imsearch-{extractor,search,rerank,gateway}:latest.
#   BASE_IMAGE  default localhost/imsearch-base:bookworm, built from Debian's packages by
#               scripts/base-image.sh when missing; python:3.11-slim-bookworm where a registry
#               is reachable
#   CA_BUNDLE   a CA bundle pip must trust (TLS-intercepting proxy), passed as a build secret
#   SERVICES    which images (default: all four, then redis)
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
for service in $SERVICES; do
  if [ "$service" = redis ]; then file=docker/redis.Dockerfile tag=imsearch-redis:bookworm
  else file=Dockerfile.$service tag=imsearch-$service:latest; fi
  start=$(date +%s)
  "$ENGINE" build "${args[@]}" -f "$file" -t "$tag" . > "var/build-$service.log" 2>&1 \
    || { tail -30 "var/build-$service.log"; echo "building $tag failed (var/build-$service.log)" >&2; exit 1; }
  size=$("$ENGINE" image inspect --format '{{.Size}}' "$tag")
  echo "$tag: $((size / 1000000)) MB, built in $(( $(date +%s) - start )) s"
done
