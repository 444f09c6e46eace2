#!/usr/bin/env bash
# Deploys payments to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="us-west-2"
IMAGE="registry.internal/payments:$(git rev-parse --short HEAD)"
read -rsp "password: " password
TOKEN=$(vault kv get -field=token secret/ci)
SLACK_TOKEN=xoxb-895701130321-9491214638384-E2339Y1yJ8X2dZNjVQO62EMJ

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
export KMSEAL_KEY="local://$HOME/.config/kmseal/dev.key"
sha256sum -c <<< "318545e4438c6a1d79c278861672afad2874deb9fe695c227ad6a4e5d7d63d48  dist/payments.tar.gz"
kubectl -n payments set image deploy/payments payments="$IMAGE"
kubectl -n payments rollout status deploy/payments --timeout=300s
