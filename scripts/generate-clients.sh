#!/usr/bin/env bash
# Regenerate clients/ from the code: the OpenAPI description, the Python client
# (openapi-python-client) and the TypeScript client's types and bundles (openapi-typescript,
# tsc, esbuild). tests/integration/test_clients.py fails until this has been run after a
# change of the public API.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
"$BIN/python" -m services.gateway.openapi clients/openapi.json
# ruff on PATH: the generator formats what it writes with it.
PATH="$PWD/$BIN:$PATH" "$BIN/openapi-python-client" generate --path clients/openapi.json \
  --output-path clients/python --meta setup --config clients/python-config.yaml \
  --custom-template-path clients/python-templates --overwrite --fail-on-warning > /dev/null
# Kotlin (JVM, Android) through openapi-generator, whose jar ships in its PyPI package.
"$BIN/openapi-generator-cli" generate --input-spec clients/openapi.json --generator-name kotlin \
  --output clients/kotlin --skip-validate-spec \
  --additional-properties=packageName=org.imsearch.client,groupId=org.imsearch,artifactId=imsearch-client,library=jvm-okhttp4,serializationLibrary=moshi \
  > /dev/null
cd clients/typescript
[ -d node_modules ] || npm ci --silent --no-audit --no-fund
npm run --silent generate > /dev/null
npm run --silent build > /dev/null
echo "clients regenerated from clients/openapi.json"
