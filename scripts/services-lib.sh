# Sourced by the benchmark scripts: start the engine's processes on loopback and stop them.
# The caller sets BIN and declares `pids=()`; every process started is appended to it.

cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }

wait_ready() {  # URL
  for _ in $(seq 300); do curl -sf "$1/readyz" >/dev/null && return 0; sleep 1; done
  echo "$1 not ready" >&2; return 1
}

start_services() {  # BASE_PORT WORK: gateway BASE, extractor +1, search +2, rerank +3, Redis +89
  local base=$1 work=$2 role name port
  # As deployed (docker-compose.yml, deploy/k8s): a bounded cache that evicts the oldest.
  redis-server --port $((base + 89)) --save "" --appendonly no --maxmemory 512mb \
    --maxmemory-policy allkeys-lru > "$work/redis.log" 2>&1 &
  pids+=($!)
  for role in extractor:$((base + 1)) search:$((base + 2)) rerank:$((base + 3)); do
    name=${role%%:*}; port=${role##*:}
    IMSEARCH_DATA_DIR="$work/$name" "$BIN/imsearch" serve --role "$name" --port "$port" \
      > "$work/$name.log" 2>&1 &
    pids+=($!)
  done
  for port in $((base + 1)) $((base + 2)) $((base + 3)); do wait_ready "http://127.0.0.1:$port"; done
  IMSEARCH_EXTRACTOR_URL=http://127.0.0.1:$((base + 1)) \
  IMSEARCH_SEARCH_URL=http://127.0.0.1:$((base + 2)) \
  IMSEARCH_RERANK_URL=http://127.0.0.1:$((base + 3)) \
  IMSEARCH_REDIS_URL=redis://127.0.0.1:$((base + 89))/0 \
    "$BIN/imsearch" serve --role gateway --port "$base" > "$work/gateway.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$base"
}

add_folder() {  # URL FOLDER [API_KEY]: every image of FOLDER through POST /v1/images
  local url=$1 folder=$2 key=${3:-} f
  for f in "$folder"/*.jpg; do
    curl -sf -o /dev/null ${key:+-H "X-API-Key: $key"} -F "image=@$f" \
      -F "id=$(basename "${f%.*}")" "$url/v1/images"
  done
}
