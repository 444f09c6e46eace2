#!/usr/bin/env bash
# Deploys inventory to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="us-west-2"
IMAGE="registry.internal/inventory:$(git rev-parse --short HEAD)"
export API_KEY="${API_KEY:?set API_KEY}"
TOKEN=$(vault kv get -field=token secret/ci)
PGPASSWORD=3AF3O9WpwKkCxMi- psql -h db.internal -U app -c 'select 1'

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
export DB_PASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"
sha256sum -c <<< "0f46187a27c4376148f3e00a996d3ec4bcb8e08db56b4b5f02fbde49db14e2be  dist/inventory.tar.gz"
kubectl -n inventory set image deploy/inventory inventory="$IMAGE"
kubectl -n inventory rollout status deploy/inventory --timeout=300s
