#!/usr/bin/env bash
# Deploys notifier to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="ap-southeast-2"
IMAGE="registry.internal/notifier:$(git rev-parse --short HEAD)"
sha256sum -c <<< "1d4fbc479a39ee30540e0e70e7c461111def1a2b686b7e70800ea9d7288b86d7  dist/notifier.tar.gz"
export DB_PASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"
curl -fsS -X POST -H "Authorization: Bearer 2Plu7lUxaUMKtbc0RYdgRgA5dlYDYmdofn4FDPTC" \
  https://api.notifier.internal/v1/deploy

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
TOKEN=$(vault kv get -field=token secret/ci)
read -rsp "password: " password
kubectl -n notifier set image deploy/notifier notifier="$IMAGE"
kubectl -n notifier rollout status deploy/notifier --timeout=300s
