#!/usr/bin/env bash
# `make bench`: the benchmark of issue 7, at the issue's sizes, in about fifteen minutes
# on two cores (up to twenty-five on a busy machine; plus the release build).
#   1. load: nats-server and target/release/kms-server (every service, every call
#      authenticated, authorized and audited) as separate processes, and moto_server
#      (installed from PyPI into $VENV); kms-bench drives both with the same workloads,
#      closed loop and open loop, and reports rates, latency percentiles, errors, CPU
#      seconds per 1,000 requests and RSS of the processes under test, and the ratio;
#   2. scale: Encrypt and DescribeKey latency with $SCALE_SIZES keys stored (fresh system),
#      uniform over every stored key (with many keys, mostly first use: gateway cache
#      misses) and over a hot set of the first $SCALE_HOT_KEYS keys, warmed first (the same
#      keys at every size), and how long creating the keys took (keys/s); then the hot set
#      on a second system storing only the smallest size and on the first at the largest,
#      measured in turn (the same moments of a noisy machine on both sides);
#   3. services: the same load (without the peer) against the five service binaries
#      (kms-gateway, kms-crypto, kms-policy, kms-metadata, kms-audit), each its own process
#      as in Kubernetes, for the RSS and CPU of each service at rest and under load;
#   4. audit-scale: LookupEvents over $AUDIT_EVENTS events in an audit store.
# Keys are created $CREATE_CONCURRENCY at a time (the sled deadlock that once forced one at
# a time is fixed). Measured on two shared cores: symmetric CreateKey ~500/s on a fresh
# store, falling to ~360/s as it fills (100,000 keys in ~4.5 min); the load setup for
# SPREAD=10000 (3 x 10,000 keys, 10,000 ciphertexts and grants) takes ~2 min. With
# DURATION=2 SKIP_MOTO=1 SKIP_AUDIT=1 the whole run takes ~8 min.
# The audit store of 1,000,000 events takes ~5 GB of disk and ~4 min to load.
# Appends everything to $REPORT. Shorter runs: DURATION=2 SPREAD=2000 SCALE_SIZES=1000,20000
# AUDIT_EVENTS=100000; SKIP_LOAD=1, SKIP_MOTO=1, SKIP_SCALE=1, SKIP_SERVICES=1, SKIP_AUDIT=1 leave
# parts out.
# The services phase adds ~3 min (its own setup of $SPREAD keys, then the workloads).
set -euo pipefail

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONCURRENCY=${CONCURRENCY:-16}
OPEN_RATES=${OPEN_RATES:-1000,3000,5000}
# The issue's sizes: spread over 10,000 keys; scale with 1,000 and 100,000 keys stored.
SPREAD=${SPREAD:-10000}
PEER_SPREAD=${PEER_SPREAD:-200}
WORKLOADS=${WORKLOADS:-encrypt,decrypt,gdk,policy-grant,sign,mixed}
SCALE_SIZES=${SCALE_SIZES:-1000,100000}
SCALE_RATE=${SCALE_RATE:-500}
# Keys of the scale run's hot set (the first stored; measured with warm gateway caches).
SCALE_HOT_KEYS=${SCALE_HOT_KEYS:-1000}
# The issue's figure; events at AUDIT_RATE per second of event time (see kms-bench
# audit-scale: 2,000/s groups as the audit service does under load; 0.4/s is 30 days).
AUDIT_EVENTS=${AUDIT_EVENTS:-1000000}
AUDIT_RATE=${AUDIT_RATE:-2000}
# Setup calls (CreateKey, Encrypt, CreateGrant) kms-bench keeps in flight.
CREATE_CONCURRENCY=${CREATE_CONCURRENCY:-32}
REPORT=${REPORT:-bench/report.md}
VENV=${VENV:-.venv}
PROFILE=${PROFILE:-release}
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE
# Another build of the server (e.g. an older commit's, for before/after figures).
KMS_SERVER_BIN=${KMS_SERVER_BIN:-$BIN/kms-server}

# Per-service binaries: $BIN/kms-gateway ... (the services phase).
SERVICES=(kms-gateway kms-crypto kms-policy kms-metadata kms-audit)
packages=(-p kms-server -p kms-bench)
[ -z "${SKIP_SERVICES:-}" ] && for s in "${SERVICES[@]}"; do packages+=(-p "$s"); done
[ "$PROFILE" = release ] && cargo build --release "${packages[@]}"
[ "$PROFILE" = debug ] && cargo build "${packages[@]}"
mkdir -p "$(dirname "$REPORT")"
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-bench.XXXXXX")
pids=()
# Whether child $1 still runs (an exited child stays a zombie until waited for).
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}
# Stops child $1: SIGTERM, and SIGKILL if it has not exited within 20 s (kms-server's
# shutdown can hang for good once nats-server is gone).
stop_pid() {
  local p=$1
  kill "$p" 2>/dev/null || true
  for _ in $(seq 1 200); do
    alive "$p" || break
    sleep 0.1
  done
  if alive "$p"; then
    echo "pid $p ($(ps -o comm= -p "$p" 2>/dev/null)) ignored SIGTERM for 20 s; killing it" >&2
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true
}
cleanup() {
  # Newest first: each kms-server before its nats-server.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop_pid "${pids[i]}"; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts nats-server and kms-server on a fresh data directory $1; sets ENDPOINT, SUT_PIDS.
start_system() {
  local dir=$1 nats_port listen
  nats_port=$(free_port)
  listen=127.0.0.1:$(free_port)
  mkdir -p "$dir"
  nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
  NATS_PID=$!
  pids+=("$NATS_PID")
  "$KMS_SERVER_BIN" dev-init --data-dir "$dir" --endpoint "http://$listen" >/dev/null
  RUST_LOG=${RUST_LOG:-warn} "$KMS_SERVER_BIN" run --data-dir "$dir" --nats-url "nats://127.0.0.1:$nats_port" \
    --listen "$listen" >"$dir/kms.log" 2>&1 &
  KMS_PID=$!
  pids+=("$KMS_PID")
  ENDPOINT=http://$listen
  SUT_PIDS=$KMS_PID,$NATS_PID
  CREDENTIALS=$dir/credentials.json
}

# kms-server first: with nats-server killed at the same time, its shutdown was seen to hang.
stop_system() {
  stop_pid "$KMS_PID"
  stop_pid "$NATS_PID"
}

# Starts nats-server and the five service binaries, each its own process as in Kubernetes,
# on a fresh data directory $1 laid out as kms-server's (`dev-init` writes the root key,
# credentials, identity policies and session key); waits for every /readyz; sets
# ENDPOINT, SUT_PIDS (the services, then nats-server), CREDENTIALS, SERVICE_PIDS.
start_services() {
  local dir=$1 nats_port listen nats_url s pid port
  nats_port=$(free_port)
  listen=127.0.0.1:$(free_port)
  nats_url=nats://127.0.0.1:$nats_port
  mkdir -p "$dir"
  nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$dir/nats" >"$dir/nats.log" 2>&1 &
  NATS_PID=$!
  pids+=("$NATS_PID")
  "$KMS_SERVER_BIN" dev-init --data-dir "$dir" --endpoint "http://$listen" >/dev/null
  SERVICE_PIDS=()
  local ports=()
  for s in "${SERVICES[@]}"; do
    local args=()
    case $s in
      kms-gateway) args=(--listen "$listen" --credentials-file "$dir/credentials.json"
                         --session-key-file "$dir/session-key.hex") ;;
      kms-crypto) args=(--crypto-data-dir "$dir/crypto" --root-key-file "$dir/root-key.hex") ;;
      kms-policy) args=(--policy-data-dir "$dir/policy" --policy-bootstrap-file "$dir/identity-policies.json") ;;
      kms-metadata) args=(--metadata-data-dir "$dir/metadata") ;;
      kms-audit) args=(--audit-data-dir "$dir/audit") ;;
    esac
    port=$(free_port)
    ports+=("$port")
    RUST_LOG=${RUST_LOG:-warn} "$BIN/$s" "${args[@]}" --nats-url "$nats_url" --health-listen "127.0.0.1:$port" \
      >"$dir/$s.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    SERVICE_PIDS+=("$pid")
  done
  for i in "${!SERVICES[@]}"; do
    for _ in $(seq 1 300); do
      curl -sf "http://127.0.0.1:${ports[i]}/readyz" >/dev/null 2>&1 && break
      alive "${SERVICE_PIDS[i]}" || { echo "${SERVICES[i]} exited: $(tail -5 "$dir/${SERVICES[i]}.log")" >&2; exit 1; }
      sleep 0.1
    done
  done
  ENDPOINT=http://$listen
  SUT_PIDS=$(IFS=,; echo "${SERVICE_PIDS[*]},$NATS_PID")
  CREDENTIALS=$dir/credentials.json
}

# Each service before nats-server, the gateway (the front) first.
stop_services() {
  for pid in "${SERVICE_PIDS[@]}"; do stop_pid "$pid"; done
  stop_pid "$NATS_PID"
}

{
  echo
  echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ) — $(nproc) cores $(uname -m), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "Command: \`make bench\` (DURATION=$DURATION WARMUP=$WARMUP CONCURRENCY=$CONCURRENCY OPEN_RATES=$OPEN_RATES SPREAD=$SPREAD PEER_SPREAD=$PEER_SPREAD SCALE_SIZES=$SCALE_SIZES SCALE_HOT_KEYS=$SCALE_HOT_KEYS CREATE_CONCURRENCY=$CREATE_CONCURRENCY AUDIT_EVENTS=$AUDIT_EVENTS AUDIT_RATE=$AUDIT_RATE PROFILE=$PROFILE); git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
} >>"$REPORT"

if [ -z "${SKIP_LOAD:-}" ]; then
  start_system "$work/load"
  peer=()
  if [ -z "${SKIP_MOTO:-}" ]; then
    if [ ! -x "$VENV/bin/moto_server" ]; then
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
    fi
    moto_port=$(free_port)
    "$VENV/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
    moto_pid=$!
    pids+=("$moto_pid")
    for _ in $(seq 1 100); do
      curl -sf "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && break
      sleep 0.1
    done
    peer=(--peer-endpoint "http://127.0.0.1:$moto_port" --peer-pids "$moto_pid" --peer-spread "$PEER_SPREAD"
          --peer-label "moto $("$VENV/bin/pip" show moto 2>/dev/null | awk '/^Version/{print $2}') (Python emulator: no authentication, no audit)")
  fi
  "$BIN/kms-bench" load --endpoint "$ENDPOINT" --credentials-file "$CREDENTIALS" --pids "$SUT_PIDS" \
    --label "kms (kms-server + nats-server)" "${peer[@]}" --concurrency "$CONCURRENCY" --open-rates "$OPEN_RATES" \
    --warmup "$WARMUP" --duration "$DURATION" --spread "$SPREAD" --workloads "$WORKLOADS" \
    --create-concurrency "$CREATE_CONCURRENCY" --out "$REPORT"
  [ -n "${moto_pid:-}" ] && kill "$moto_pid" 2>/dev/null || true
  stop_system
fi

if [ -z "${SKIP_SCALE:-}" ]; then
  # The reference: a second system that stores only the hot set, measured in turn with
  # the first at the largest size.
  start_system "$work/scale-reference"
  ref=(--reference-endpoint "$ENDPOINT" --reference-credentials-file "$CREDENTIALS" --reference-pids "$SUT_PIDS")
  ref_kms=$KMS_PID ref_nats=$NATS_PID
  start_system "$work/scale"
  "$BIN/kms-bench" scale --endpoint "$ENDPOINT" --credentials-file "$CREDENTIALS" --pids "$SUT_PIDS" \
    --label "kms (kms-server + nats-server)" --sizes "$SCALE_SIZES" --rate "$SCALE_RATE" --duration "$DURATION" \
    --hot-keys "$SCALE_HOT_KEYS" --create-concurrency "$CREATE_CONCURRENCY" "${ref[@]}" --out "$REPORT"
  stop_system
  KMS_PID=$ref_kms NATS_PID=$ref_nats
  stop_system
fi

if [ -z "${SKIP_SERVICES:-}" ]; then
  start_services "$work/services"
  "$BIN/kms-bench" load --endpoint "$ENDPOINT" --credentials-file "$CREDENTIALS" --pids "$SUT_PIDS" \
    --label "kms (five service processes + nats-server)" --concurrency "$CONCURRENCY" --open-rates "$OPEN_RATES" \
    --warmup "$WARMUP" --duration "$DURATION" --spread "$SPREAD" --workloads "$WORKLOADS" \
    --create-concurrency "$CREATE_CONCURRENCY" --out "$REPORT"
  stop_services
fi

if [ -z "${SKIP_AUDIT:-}" ]; then
  "$BIN/kms-bench" audit-scale --events "$AUDIT_EVENTS" --rate "$AUDIT_RATE" --dir "$work/audit" --out "$REPORT"
fi
echo "report: $REPORT"
