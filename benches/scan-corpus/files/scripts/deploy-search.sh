#!/usr/bin/env bash
# Deploys search to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="us-west-2"
IMAGE="registry.internal/search:$(git rev-parse --short HEAD)"
password_file="${XDG_RUNTIME_DIR}/db.pass"
TOKEN=$(vault kv get -field=token secret/ci)
export GITHUB_TOKEN="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"

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
export API_KEY="${API_KEY:?set API_KEY}"
read -rsp "password: " password
kubectl -n search set image deploy/search search="$IMAGE"
kubectl -n search rollout status deploy/search --timeout=300s
