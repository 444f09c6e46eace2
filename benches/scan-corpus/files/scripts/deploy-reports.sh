#!/usr/bin/env bash
# Deploys reports to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="us-west-2"
IMAGE="registry.internal/reports:$(git rev-parse --short HEAD)"
if [ -z "${GITHUB_TOKEN:-}" ]; then echo "GITHUB_TOKEN is not set" >&2; exit 1; fi
export KMSEAL_KEY="local://$HOME/.config/kmseal/dev.key"
SLACK_TOKEN=xoxb-120667144727-4869763176862-V4k98ZdzXguZmfniTuKCQfvP

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
export DB_PASSWORD="$(aws secretsmanager get-secret-value --secret-id prod/db --query SecretString --output text)"
git checkout 9435d59d71f4cd6e9d253dcef3bbad1c4e2b4a34
kubectl -n reports set image deploy/reports reports="$IMAGE"
kubectl -n reports rollout status deploy/reports --timeout=300s
