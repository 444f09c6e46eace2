#!/usr/bin/env bash
# Deploys gateway to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="us-east-1"
IMAGE="registry.internal/gateway:$(git rev-parse --short HEAD)"
export API_KEY="${API_KEY:?set API_KEY}"
kmseal exec config/prod.yaml -- ./bin/server
export DEPLOY_TOKEN=255cbeb0c06133acac87314a3307c8c2
export DATABASE_URL='redis://svc_orders:npSAUvQzkniJViP9@cache.internal:6379/analytics'

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
password_file="${XDG_RUNTIME_DIR}/db.pass"
read -rsp "password: " password
kubectl -n gateway set image deploy/gateway gateway="$IMAGE"
kubectl -n gateway rollout status deploy/gateway --timeout=300s
