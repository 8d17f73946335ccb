#!/usr/bin/env bash
# Runs the whole system for development: nats-server with JetStream and every service in
# one process, with all data under $DATA_DIR. Prints the environment that points the aws
# CLI and the SDKs at the gateway. Ctrl-C stops everything; data stays.
set -euo pipefail

DATA_DIR=${DATA_DIR:-.data}
NATS_PORT=${NATS_PORT:-4222}
LISTEN=${LISTEN:-127.0.0.1:4566}
REGION=${REGION:-us-east-1}
BIN=${KMS_SERVER_BIN:-target/debug/kms-server}

mkdir -p "$DATA_DIR"
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DATA_DIR/nats" >"$DATA_DIR/nats.log" 2>&1 &
nats_pid=$!
trap 'kill $nats_pid 2>/dev/null || true' EXIT

env_file="$DATA_DIR/env.sh"
"$BIN" dev-init --data-dir "$DATA_DIR" --endpoint "http://$LISTEN" --region "$REGION" >"$env_file"
cat <<MSG

The gateway will listen on http://$LISTEN (region $REGION).
Point the aws CLI or an SDK at it with:

  source $env_file

$(sed 's/^/  /' "$env_file")

Then, for example:  aws kms create-key --description "my first key"
                    aws cloudtrail lookup-events --max-results 5
A second tenant:    aws --profile kms-dev-444455556666 kms list-keys

MSG
"$BIN" run --data-dir "$DATA_DIR" --nats-url "nats://127.0.0.1:$NATS_PORT" --listen "$LISTEN" --default-region "$REGION" \
  --audit-grpc-listen "${KMS_AUDIT_GRPC_LISTEN:-127.0.0.1:4567}"
