#!/usr/bin/env bash
# Deploys catalog to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="eu-central-1"
IMAGE="registry.internal/catalog:$(git rev-parse --short HEAD)"
git checkout 9d7bb533c5e2057b5d705720ee5df2055e854f22
password_file="${XDG_RUNTIME_DIR}/db.pass"
export DEPLOY_TOKEN=/RNbu8oXmC/ucaxvgcOeIG+pfTY3WBIYxZ5XznR2wbY=
export DATABASE_URL='mongodb+srv://svc_orders:Hu~7WjuBfA5RuH7~-dl@orders-db.prod.svc.cluster.local:5432/app'

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
export API_KEY="${API_KEY:?set API_KEY}"
export KMSEAL_KEY="local://$HOME/.config/kmseal/dev.key"
kubectl -n catalog set image deploy/catalog catalog="$IMAGE"
kubectl -n catalog rollout status deploy/catalog --timeout=300s
