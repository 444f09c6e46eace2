#!/usr/bin/env bash
# Deploys auth to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="eu-central-1"
IMAGE="registry.internal/auth:$(git rev-parse --short HEAD)"
export KMSEAL_KEY="local://$HOME/.config/kmseal/dev.key"
export DB_PASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"
export AWS_ACCESS_KEY_ID=ASIA64MZI2R2Q3XLU37G
export AWS_SECRET_ACCESS_KEY=kbISaY3H2sOumOeKtcGdOn4P8QyxoTJL750l8Ozf

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
kmseal exec config/prod.yaml -- ./bin/server
if [ -z "${GITHUB_TOKEN:-}" ]; then echo "GITHUB_TOKEN is not set" >&2; exit 1; fi
kubectl -n auth set image deploy/auth auth="$IMAGE"
kubectl -n auth rollout status deploy/auth --timeout=300s
