# Redis from Debian's package, for machines that cannot pull redis:7-alpine (the compose
# file's default): IMSEARCH_REDIS_IMAGE=imsearch-redis:bookworm (make compose-smoke does).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
# The user first, with the uid the official image uses, so the package does not pick one.
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid redis --home-dir /var/lib/redis redis \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER 999:999
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
