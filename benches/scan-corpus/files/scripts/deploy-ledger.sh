#!/usr/bin/env bash
# Deploys ledger to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="eu-central-1"
IMAGE="registry.internal/ledger:$(git rev-parse --short HEAD)"
read -rsp "password: " password
TOKEN=$(vault kv get -field=token secret/ci)
PGPASSWORD=FyNRNZJ1btiBkRFHBmA psql -h db.internal -U app -c 'select 1'

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
export DB_PASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"
export KMSEAL_KEY="local://$HOME/.config/kmseal/dev.key"
kubectl -n ledger set image deploy/ledger ledger="$IMAGE"
kubectl -n ledger rollout status deploy/ledger --timeout=300s
