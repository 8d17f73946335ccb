#!/usr/bin/env bash
# `make bench`: measures Encrypt, Decrypt and GenerateDataKey through aws-sdk-kms, first
# against this system (started in-process by kms-bench: real nats-server, every call
# authenticated and audited), then against a peer — moto, the Python AWS emulator —
# measured by the same client. Appends both tables to $REPORT.
set -euo pipefail

SECONDS_PER_OP=${SECONDS_PER_OP:-10}
CONCURRENCY=${CONCURRENCY:-16}
REPORT=${REPORT:-bench/report.md}
VENV=${VENV:-.venv}

mkdir -p "$(dirname "$REPORT")"
cargo build --release -p kms-bench
{
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores ($(uname -m))"
} >>"$REPORT"
target/release/kms-bench --seconds "$SECONDS_PER_OP" --concurrency "$CONCURRENCY" --out "$REPORT"

if [ ! -x "$VENV/bin/moto_server" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >/tmp/moto-bench.log 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
  sleep 0.1
done
target/release/kms-bench --endpoint "http://127.0.0.1:$port" --label "moto $("$VENV/bin/pip" show moto 2>/dev/null | awk '/^Version/{print $2}') (Python emulator, no authentication, no audit)" \
  --seconds "$SECONDS_PER_OP" --concurrency "$CONCURRENCY" --out "$REPORT"
echo "report: $REPORT"
