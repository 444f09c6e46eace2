#!/usr/bin/env bash
# Deploys billing to the staging cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

REGION="us-west-2"
IMAGE="registry.internal/billing:$(git rev-parse --short HEAD)"
kmseal exec config/prod.yaml -- ./bin/server
export KMSEAL_KEY="local://$HOME/.config/kmseal/dev.key"
export AWS_ACCESS_KEY_ID=ASIAVQLRXEBBGWVQWBED
export AWS_SECRET_ACCESS_KEY=S7A4PNwsvQh3g0ooVS9MNEBaPzaeV55n67FFOV4A

log() { printf "deploy: %s\n" "$*" >&2; }
log "building $IMAGE"
docker build -t "$IMAGE" .
docker push "$IMAGE"
if [ -z "${GITHUB_TOKEN:-}" ]; then echo "GITHUB_TOKEN is not set" >&2; exit 1; fi
password_file="${XDG_RUNTIME_DIR}/db.pass"
kubectl -n billing set image deploy/billing billing="$IMAGE"
kubectl -n billing rollout status deploy/billing --timeout=300s
