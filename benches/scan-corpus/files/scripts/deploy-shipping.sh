#!/usr/bin/env bash
# Deploys shipping to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="us-east-1"
IMAGE="registry.internal/shipping:$(git rev-parse --short HEAD)"
export DB_PASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"
git checkout 6ec2c88e8eff679fd951f492ac25755d02f9fc5c
curl -fsS -X POST -H "Authorization: Bearer p8DfY0xFHFZdaau9OHkdmsW86SxE60Ybz6USqj4V" \
  https://api.shipping.internal/v1/deploy

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
read -rsp "password: " password
TOKEN=$(vault kv get -field=token secret/ci)
kubectl -n shipping set image deploy/shipping shipping="$IMAGE"
kubectl -n shipping rollout status deploy/shipping --timeout=300s
