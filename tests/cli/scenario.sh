#!/usr/bin/env bash
# End-to-end scenario with the real `aws` CLI, following the "AWS CLI Commands Reference"
# of the seed document: keys, aliases, encryption with encryption context, re-encryption,
# data keys, random bytes, enable/disable, descriptions, tags, key policies, scheduled
# deletion, tenant isolation, authentication failures and `aws cloudtrail lookup-events`.
#
# Self-contained: starts nats-server and kms-server on free ports with everything under a
# temp directory, removes it on exit, prints the server log when anything fails.
#
#   bash tests/cli/scenario.sh                  # uses `aws` on PATH, target/debug/kms-server
#   AWS_CLI=.venv/bin/aws KMS_SERVER_BIN=... bash tests/cli/scenario.sh
#
# Every check appends one line to a results file, so checks may run in subshells and in
# the parallel groups below; a failed check is reported and the run goes on. The last
# line is "N passed, M failed"; the exit status is 1 if any check failed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${KMS_SERVER_BIN:-$repo/target/debug/kms-server}
AWS=${AWS_CLI:-aws}
if [ ! -x "$BIN" ]; then
  echo "kms-server binary not found at $BIN (build it with: cargo build -p kms-server)" >&2
  exit 2
fi
command -v "$AWS" >/dev/null || { echo "aws CLI not found: $AWS" >&2; exit 2; }
command -v nats-server >/dev/null || { echo "nats-server not found (apt-get install nats-server)" >&2; exit 2; }
for tool in curl python3 base64 cmp; do
  command -v "$tool" >/dev/null || { echo "$tool not found" >&2; exit 2; }
done

started=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/kms-cli-scenario.XXXXXX")
results=$work/results
: >"$results"
nats_pid=""
server_pid=""
group_pids=()
bg_pids=()

show_logs() {
  local no_colour='s/\x1b\[[0-9;]*m//g'
  echo "--- kms-server log (last 200 lines) ---" >&2
  tail -n 200 "$work/server.log" 2>/dev/null | sed "$no_colour" >&2 || true
  echo "--- nats-server log (last 20 lines) ---" >&2
  tail -n 20 "$work/nats.log" 2>/dev/null | sed "$no_colour" >&2 || true
}
stop() { # pid: SIGTERM, up to 5 s to exit, then SIGKILL
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -z "${logs_shown:-}" ]; then show_logs; fi
  for pid in ${group_pids[@]+"${group_pids[@]}"} ${bg_pids[@]+"${bg_pids[@]}"}; do
    kill "$pid" 2>/dev/null || true # checks still running when interrupted
  done
  stop "$server_pid"
  stop "$nats_pid"
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- checks -----------------------------------------------------------------------------
# Progress goes to fd 3 (the script's stdout) so that checks inside $(...) print too.
exec 3>&1
pass() {
  echo pass >>"$results"
  echo "ok      $1" >&3
}
fail() {
  echo fail >>"$results"
  echo "FAILED  $1" >&3
}
expect_eq() { # label expected actual
  if [ "$2" == "$3" ]; then pass "$1"; else fail "$1: expected [$2], got [$3]"; fi
}
expect_contains() { # label needle haystack
  if [[ "$3" == *"$2"* ]]; then pass "$1"; else fail "$1: [$2] not in [${3:0:600}]"; fi
}
expect_not_contains() { # label needle haystack
  if [ -n "$2" ] && [[ "$3" != *"$2"* ]]; then pass "$1"; else fail "$1: [$2] must not appear (or is empty)"; fi
}
expect_match() { # label extended-regex haystack
  if [[ "$3" =~ $2 ]]; then pass "$1"; else fail "$1: /$2/ does not match [${3:0:600}]"; fi
}
expect_line() { # label line text   text has this exact line
  if printf '%s\n' "$3" | grep -Fxq -- "$2"; then pass "$1"; else fail "$1: no line [$2] in [${3:0:600}]"; fi
}
expect_error() { # ErrorCode -- command...   the command fails and stderr names "(ErrorCode)"
  local code=$1 err errf="$work/err.$BASHPID"
  shift 2
  local label
  label="$code from $(printf '%s ' "${@:1:6}" | sed 's/SECRET_ACCESS_KEY=[^ ]*/SECRET_ACCESS_KEY=.../' | cut -c1-120)"
  if "$@" >/dev/null 2>"$errf"; then
    fail "$label: the call succeeded"
  else
    err=$(cat "$errf")
    if [[ "$err" == *"($code)"* ]]; then pass "$label"; else fail "$label: got [${err}]"; fi
  fi
}
run() { # command...   must succeed; prints its stdout (nothing if it failed)
  local out errf="$work/err.$BASHPID"
  if out=$("$@" 2>"$errf"); then
    pass "${*:1:4}"
    printf '%s\n' "$out"
  else
    fail "${*:1:4}: $(cat "$errf")"
  fi
}
# Words of a text-output list, sorted and space-separated, for order-free comparison.
words() { printf '%s\n' "$1" | tr -s '\t ' '\n\n' | sed '/^$/d' | sort | paste -sd' ' -; }
b64file() { base64 --decode >"$1"; } # stdin base64 -> binary file (empty input -> empty file)
size() { wc -c <"$1" | tr -d ' '; }
# Concurrent calls: `cmd & bg_pids+=($!)`, then wait_bg (never a bare `wait`: the servers are children too).
wait_bg() {
  local pid
  for pid in "${bg_pids[@]}"; do wait "$pid" || true; done
  bg_pids=()
}

kms() { "$AWS" kms "$@"; }
other() { "$AWS" --profile kms-dev-444455556666 "$@"; } # the second tenant
trail() { "$AWS" cloudtrail lookup-events "$@"; }

# --- start nats-server and kms-server ----------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
nats_port=$(free_port)
api_port=$(free_port)
while [ "$api_port" == "$nats_port" ]; do api_port=$(free_port); done

nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
nats_pid=$!
ready=""
for _ in $(seq 1 100); do # up to 10 s
  if (exec 5<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null; then ready=1; break; fi
  kill -0 "$nats_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ready" ] || { echo "nats-server did not start" >&2; exit 1; }

# Credentials must come from the dev profiles only, never from the caller's environment.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_DEFAULT_PROFILE
export AWS_PAGER=""
"$BIN" dev-init --data-dir "$work/data" --endpoint "http://127.0.0.1:$api_port" --region us-east-1 >"$work/env.sh"
eval "$(cat "$work/env.sh")"

"$BIN" run --data-dir "$work/data" --nats-url "nats://127.0.0.1:$nats_port" \
  --listen "127.0.0.1:$api_port" >"$work/server.log" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 300); do # up to 30 s
  if [ "$(curl -sf "http://127.0.0.1:$api_port/healthz" 2>/dev/null)" == "ok" ]; then ready=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ready" ] || { echo "kms-server did not become ready" >&2; exit 1; }
# /healthz is the gateway; the services behind it subscribe concurrently: one real call.
ready=""
for _ in $(seq 1 20); do
  if kms list-keys >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "kms-server does not answer ListKeys" >&2; exit 1; }
echo "kms-server ready on port $api_port after $(($(date +%s) - started)) s"

account=111122223333
region=us-east-1
access_key=$(awk -F' *= *' '/^\[/{s=($0=="[kms-dev]")} s && $1=="aws_access_key_id"{print $2}' "$AWS_SHARED_CREDENTIALS_FILE")
secret_key=$(awk -F' *= *' '/^\[/{s=($0=="[kms-dev]")} s && $1=="aws_secret_access_key"{print $2}' "$AWS_SHARED_CREDENTIALS_FILE")
wrong_secret=$( [ "${secret_key:0:1}" == x ] && echo "y${secret_key:1}" || echo "x${secret_key:1}")
alias_arn() { echo "arn:aws:kms:$region:$account:alias/${1#alias/}"; }

# ========================================================================================
# Setup shared by the groups below: four keys (created concurrently) and two aliases.
# ========================================================================================
plaintext="CLI-SCENARIO-PLAINTEXT-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s' "$plaintext" >"$work/plaintext.txt"
: >"$work/secrets" # every secret value the service returned; none may appear in the audit trail

echo "== create-key"
run kms create-key --description "My application encryption key" --key-usage ENCRYPT_DECRYPT --origin AWS_KMS \
  --query 'KeyMetadata.[KeyId,Arn]' --output text >"$work/key1" &
bg_pids+=($!)
run kms create-key --description "Production database encryption key" --key-usage ENCRYPT_DECRYPT \
  --tags TagKey=Environment,TagValue=Production TagKey=Application,TagValue=Database \
  --query 'KeyMetadata.[KeyId,Arn]' --output text >"$work/key2" &
bg_pids+=($!)
run kms create-key --description "Auto-rotating encryption key" --key-usage ENCRYPT_DECRYPT \
  --query 'KeyMetadata.[KeyId,Arn]' --output text >"$work/key3" &
bg_pids+=($!)
run kms create-key --description "Key to delete" --query 'KeyMetadata.[KeyId,Arn]' --output text >"$work/key4" &
bg_pids+=($!)
wait_bg
read -r key1 arn1 <"$work/key1" || true
read -r key2 arn2 <"$work/key2" || true
read -r key3 arn3 <"$work/key3" || true
read -r key4 arn4 <"$work/key4" || true
for k in 1 2 3 4; do
  key_var=key$k arn_var=arn$k
  expect_match "create-key #$k returns a key id" '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' "${!key_var:-}"
  expect_eq "create-key #$k returns the key ARN" "arn:aws:kms:$region:$account:key/${!key_var:-}" "${!arn_var:-}"
done
run kms create-alias --alias-name alias/my-application-key --target-key-id "$key1" >/dev/null &
bg_pids+=($!)
run kms create-alias --alias-name alias/new-application-key --target-key-id "$key2" >/dev/null &
bg_pids+=($!)
# A ciphertext of account 1 for the cross-tenant check.
run kms encrypt --key-id "$key1" --plaintext "fileb://$work/plaintext.txt" --query CiphertextBlob --output text \
  | b64file "$work/first-tenant.bin" &
bg_pids+=($!)
wait_bg

# ========================================================================================
# Groups of checks that touch disjoint state, run in parallel (awscli's start-up dominates
# the run time). Each prints to its own log, shown in order once all are done.
# ========================================================================================
group_keys_and_aliases() {
  echo "== describe-key, list-keys"
  expect_eq "describe-key by id" "$key1 $arn1 Enabled True ENCRYPT_DECRYPT AWS_KMS SYMMETRIC_DEFAULT My application encryption key" \
    "$(kms describe-key --key-id "$key1" --output text \
      --query 'KeyMetadata.[KeyId,Arn,KeyState,Enabled,KeyUsage,Origin,KeySpec,Description]' | tr '\t' ' ')"
  expect_eq "describe-key by ARN" "$key2	Production database encryption key" \
    "$(kms describe-key --key-id "$arn2" --query 'KeyMetadata.[KeyId,Description]' --output text)"
  expect_eq "describe-key by alias name" "$key1" \
    "$(kms describe-key --key-id alias/my-application-key --query KeyMetadata.KeyId --output text)"
  expect_eq "describe-key by alias ARN" "$key1" \
    "$(kms describe-key --key-id "$(alias_arn my-application-key)" --query KeyMetadata.KeyId --output text)"
  expect_eq "list-keys shows the four keys" "$(words "$key1=$arn1 $key2=$arn2 $key3=$arn3 $key4=$arn4")" \
    "$(words "$(kms list-keys --query "Keys[].join('=', [KeyId,KeyArn])" --output text)")"
  read -r truncated marker first <<<"$(kms list-keys --limit 1 --query '[Truncated,NextMarker,Keys[0].KeyId]' --output text)"
  expect_eq "list-keys --limit 1 is truncated" "True" "${truncated:-}"
  expect_match "list-keys --limit 1 has a NextMarker" '^[^[:space:]]+$' "${marker:-}"
  rest=$(run kms list-keys --marker "${marker:-none}" --query 'Keys[].KeyId' --output text)
  expect_eq "list-keys --marker NextMarker returns the other three keys" "$(words "$key1 $key2 $key3 $key4")" \
    "$(words "${first:-} $rest")"

  echo "== aliases"
  run kms create-alias --alias-name alias/old-application-key --target-key-id "$key1" >/dev/null
  expect_eq "list-aliases" "alias/my-application-key alias/new-application-key alias/old-application-key" \
    "$(words "$(kms list-aliases --query "Aliases[?!starts_with(AliasName, 'alias/aws/')].AliasName" --output text)")"
  expect_eq "list-aliases --key-id" "alias/my-application-key=$key1=$(alias_arn my-application-key) alias/old-application-key=$key1=$(alias_arn old-application-key)" \
    "$(words "$(kms list-aliases --key-id "$key1" --query "Aliases[].join('=', [AliasName,TargetKeyId,AliasArn])" --output text)")"
  run kms update-alias --alias-name alias/old-application-key --target-key-id "$key2" >/dev/null
  expect_eq "update-alias retargets the alias" "$key2" \
    "$(kms describe-key --key-id alias/old-application-key --query KeyMetadata.KeyId --output text)"
  expect_eq "list-aliases --key-id after update-alias" "alias/new-application-key alias/old-application-key" \
    "$(words "$(kms list-aliases --key-id "$key2" --query 'Aliases[].AliasName' --output text)")"
  run kms delete-alias --alias-name alias/old-application-key >/dev/null
  expect_error NotFoundException -- kms describe-key --key-id alias/old-application-key
  expect_eq "list-aliases after delete-alias" "alias/my-application-key alias/new-application-key" \
    "$(words "$(kms list-aliases --query "Aliases[?!starts_with(AliasName, 'alias/aws/')].AliasName" --output text)")"
}

group_crypto() {
  echo "== encrypt, decrypt, re-encrypt"
  # Encrypt without encryption context, decrypt round trip byte for byte.
  run kms encrypt --key-id alias/my-application-key --plaintext "fileb://$work/plaintext.txt" \
    --query CiphertextBlob --output text | b64file "$work/encrypted_data.bin"
  run kms decrypt --ciphertext-blob "fileb://$work/encrypted_data.bin" --query Plaintext --output text \
    | b64file "$work/decrypted_data.txt"
  if [ -s "$work/decrypted_data.txt" ] && cmp -s "$work/plaintext.txt" "$work/decrypted_data.txt"; then
    pass "decrypt round trip is byte-exact"
  else
    fail "decrypt round trip is byte-exact"
  fi

  # Encrypt with an encryption context.
  run kms encrypt --key-id alias/my-application-key --plaintext "fileb://$work/plaintext.txt" \
    --encryption-context Department=Finance,Purpose=Audit --query CiphertextBlob --output text \
    | b64file "$work/encrypted.bin"
  run kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin" --encryption-context Department=Finance,Purpose=Audit \
    --query Plaintext --output text | b64file "$work/decrypted.txt"
  if [ -s "$work/decrypted.txt" ] && cmp -s "$work/plaintext.txt" "$work/decrypted.txt"; then
    pass "decrypt with encryption context is byte-exact"
  else
    fail "decrypt with encryption context is byte-exact"
  fi
  expect_eq "decrypt names the key and algorithm" "$arn1	SYMMETRIC_DEFAULT" \
    "$(kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin" --encryption-context Purpose=Audit,Department=Finance \
      --query '[KeyId,EncryptionAlgorithm]' --output text)"
  expect_error InvalidCiphertextException -- kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin"
  expect_error InvalidCiphertextException -- kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin" \
    --encryption-context Department=Finance,Purpose=Other
  python3 - "$work/encrypted.bin" "$work/tampered.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) // 2 + 4] ^= 0x01  # one bit inside the sealed part
open(sys.argv[2], "wb").write(data)
PY
  expect_error InvalidCiphertextException -- kms decrypt --ciphertext-blob "fileb://$work/tampered.bin" \
    --encryption-context Department=Finance,Purpose=Audit
  expect_error IncorrectKeyException -- kms decrypt --key-id "$key2" --ciphertext-blob "fileb://$work/encrypted.bin" \
    --encryption-context Department=Finance,Purpose=Audit
  expect_eq "decrypt with the right --key-id (alias)" "$arn1" \
    "$(kms decrypt --key-id alias/my-application-key --ciphertext-blob "fileb://$work/encrypted.bin" \
      --encryption-context Department=Finance,Purpose=Audit --query KeyId --output text)"

  # Re-encrypt under another key with a new encryption context.
  expect_eq "re-encrypt source and destination" "$arn1 $arn2" \
    "$(kms re-encrypt --ciphertext-blob "fileb://$work/encrypted.bin" --source-encryption-context Department=Finance,Purpose=Audit \
      --destination-key-id alias/new-application-key --destination-encryption-context Department=Finance,Rotated=true \
      --query '[SourceKeyId,KeyId]' --output text | tr '\t' ' ')"
  run kms re-encrypt --ciphertext-blob "fileb://$work/encrypted.bin" --source-encryption-context Department=Finance,Purpose=Audit \
    --destination-key-id alias/new-application-key --destination-encryption-context Department=Finance,Rotated=true \
    --query CiphertextBlob --output text | b64file "$work/rotated.bin"
  kms decrypt --ciphertext-blob "fileb://$work/rotated.bin" --encryption-context Department=Finance,Rotated=true \
    --query Plaintext --output text 2>/dev/null | b64file "$work/rotated.txt" || true
  if [ -s "$work/rotated.txt" ] && cmp -s "$work/plaintext.txt" "$work/rotated.txt"; then
    pass "decrypt of the re-encrypted ciphertext"
  else
    fail "decrypt of the re-encrypted ciphertext"
  fi
  expect_error InvalidCiphertextException -- kms decrypt --ciphertext-blob "fileb://$work/rotated.bin" \
    --encryption-context Department=Finance,Purpose=Audit

}

group_data_keys() {
  echo "== create-key tags, unknown keys, invalid aliases (no state change)"
  expect_eq "tags given to create-key" "Application=Database Environment=Production" \
    "$(words "$(kms list-resource-tags --key-id "$key2" --query "Tags[].join('=', [TagKey,TagValue])" --output text)")"
  expect_error NotFoundException -- kms describe-key --key-id 1234abcd-12ab-34cd-56ef-1234567890ab
  expect_error NotAuthorizedException -- kms create-alias --alias-name alias/aws/x --target-key-id "$key1"
  expect_error ValidationException -- kms create-alias --alias-name my-application-key --target-key-id "$key1"
  expect_error AlreadyExistsException -- kms create-alias --alias-name alias/my-application-key --target-key-id "$key2"

  echo "== data keys and random bytes"
  read -r dk_plain dk_blob <<<"$(run kms generate-data-key --key-id alias/my-application-key --key-spec AES_256 \
    --query '[Plaintext,CiphertextBlob]' --output text)"
  echo "${dk_plain:-}" >>"$work/secrets"
  expect_eq "AES_256 data key is 32 bytes" "32" "$(printf '%s' "${dk_plain:-}" | base64 --decode | wc -c | tr -d ' ')"
  printf '%s' "${dk_blob:-}" | b64file "$work/datakey.bin"
  expect_eq "data key CiphertextBlob decrypts to its Plaintext" "${dk_plain:-missing}" \
    "$(kms decrypt --ciphertext-blob "fileb://$work/datakey.bin" --query Plaintext --output text)"
  dk32=$(run kms generate-data-key --key-id alias/my-application-key --number-of-bytes 32 --query Plaintext --output text)
  echo "$dk32" >>"$work/secrets"
  expect_eq "--number-of-bytes 32 data key is 32 bytes" "32" "$(printf '%s' "$dk32" | base64 --decode | wc -c | tr -d ' ')"
  without=$(run kms generate-data-key-without-plaintext --key-id alias/my-application-key --key-spec AES_256 --output json)
  expect_not_contains "generate-data-key-without-plaintext has no Plaintext" '"Plaintext"' "$without"
  expect_contains "generate-data-key-without-plaintext has a CiphertextBlob" '"CiphertextBlob"' "$without"
  run kms generate-random --number-of-bytes 32 --query Plaintext --output text >"$work/random.b64"
  cat "$work/random.b64" >>"$work/secrets"
  base64 --decode <"$work/random.b64" >"$work/random_bytes.bin" || true
  expect_eq "generate-random --number-of-bytes 32" "32" "$(size "$work/random_bytes.bin")"
  expect_error ValidationException -- kms generate-random --number-of-bytes 1025
}

group_key_management() {
  echo "== disable-key / enable-key"
  run kms disable-key --key-id "$key3" >/dev/null
  expect_eq "disabled key state" "Disabled False" \
    "$(kms describe-key --key-id "$key3" --query 'KeyMetadata.[KeyState,Enabled]' --output text | tr '\t' ' ')"
  expect_error DisabledException -- kms encrypt --key-id "$key3" --plaintext "fileb://$work/plaintext.txt"
  run kms enable-key --key-id "$key3" >/dev/null
  expect_eq "encrypt works again after enable-key" "$arn3" \
    "$(kms encrypt --key-id "$key3" --plaintext "fileb://$work/plaintext.txt" --query KeyId --output text)"

  echo "== update-key-description, tags"
  run kms update-key-description --key-id "$key3" --description "Renamed application key" >/dev/null
  expect_eq "update-key-description" "Renamed application key" \
    "$(kms describe-key --key-id "$key3" --query KeyMetadata.Description --output text)"
  run kms tag-resource --key-id "$key3" --tags TagKey=CostCenter,TagValue=Engineering TagKey=Owner,TagValue=SecurityTeam >/dev/null
  expect_eq "list-resource-tags after tag-resource" "CostCenter=Engineering Owner=SecurityTeam" \
    "$(words "$(kms list-resource-tags --key-id "$key3" --query "Tags[].join('=', [TagKey,TagValue])" --output text)")"
  run kms untag-resource --key-id "$key3" --tag-keys CostCenter Owner >/dev/null
  expect_eq "list-resource-tags after untag-resource" "0" \
    "$(kms list-resource-tags --key-id "$key3" --query 'length(Tags)' --output text)"

  echo "== key policies"
  expect_contains "default key policy names the account root" "arn:aws:iam::$account:root" \
    "$(kms get-key-policy --key-id "$key3" --policy-name default --query Policy --output text)"
  cat >"$work/key-policy.json" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "Enable IAM User Permissions",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::$account:root"},
      "Action": "kms:*",
      "Resource": "*"
    },
    {
      "Sid": "Allow use of the key for encryption",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::$account:user/dev"},
      "Action": [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey"
      ],
      "Resource": "*"
    },
    {
      "Sid": "Allow attachment of persistent resources",
      "Effect": "Allow",
      "Principal": {"AWS": "arn:aws:iam::$account:user/dev"},
      "Action": ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"],
      "Resource": "*",
      "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    }
  ]
}
JSON
  run kms put-key-policy --key-id "$key3" --policy-name default --policy "file://$work/key-policy.json" >/dev/null
  expect_eq "get-key-policy returns the policy put" "$(cat "$work/key-policy.json")" \
    "$(kms get-key-policy --key-id "$key3" --policy-name default --query Policy --output text)"
  echo '{"Version": "2012-10-17", "Statement": [' >"$work/bad-policy.json"
  expect_error MalformedPolicyDocumentException -- kms put-key-policy --key-id "$key3" --policy-name default \
    --policy "file://$work/bad-policy.json"
  expect_eq "list-key-policies" "default" "$(kms list-key-policies --key-id "$key3" --query 'PolicyNames' --output text)"
}

group_deletion_tenants_auth() {
  echo "== schedule-key-deletion / cancel-key-deletion"
  read -r state deletion_date window <<<"$(run kms schedule-key-deletion --key-id "$key4" --pending-window-in-days 7 \
    --query '[KeyState,DeletionDate,PendingWindowInDays]' --output text)"
  expect_eq "schedule-key-deletion state" "PendingDeletion 7" "${state:-} ${window:-}"
  # DeletionDate is present and about seven days from now (epoch seconds or ISO 8601).
  case "${deletion_date:-None}" in
    *T*) deletion_epoch=$(date -d "$deletion_date" +%s 2>/dev/null || echo 0) ;;
    None) deletion_epoch=0 ;;
    *) deletion_epoch=${deletion_date%.*} ;;
  esac
  days_ahead=$(((deletion_epoch - $(date +%s) + 3600) / 86400))
  expect_eq "DeletionDate is seven days ahead" "7" "$days_ahead"
  expect_eq "describe-key of a key pending deletion" "PendingDeletion True" \
    "$(kms describe-key --key-id "$key4" --query 'KeyMetadata.[KeyState,DeletionDate != `null`]' --output text | tr '\t' ' ')"
  expect_error KMSInvalidStateException -- kms encrypt --key-id "$key4" --plaintext "fileb://$work/plaintext.txt"
  expect_error ValidationException -- kms schedule-key-deletion --key-id "$key2" --pending-window-in-days 6
  expect_eq "cancel-key-deletion" "$arn4" "$(kms cancel-key-deletion --key-id "$key4" --query KeyId --output text)"
  expect_eq "a cancelled key is Disabled" "Disabled False" \
    "$(kms describe-key --key-id "$key4" --query 'KeyMetadata.[KeyState,Enabled]' --output text | tr '\t' ' ')"

  echo "== tenant isolation (account 444455556666)"
  expect_error AccessDeniedException -- other kms describe-key --key-id "$arn1"
  expect_error NotFoundException -- other kms describe-key --key-id "$key1"
  expect_error NotFoundException -- other kms describe-key --key-id alias/my-application-key
  other_key=$(run other kms create-key --description "second tenant's key" --query KeyMetadata.KeyId --output text)
  expect_eq "second tenant's list-keys shows only its own key" "${other_key:-missing}" \
    "$(other kms list-keys --query 'Keys[].KeyId' --output text)"
  # The ciphertext of account 1 must be useless to account 2 (AWS answers AccessDeniedException
  # for a cross-account key without a policy grant; see tests/cli/README.md).
  if out=$(other kms decrypt --ciphertext-blob "fileb://$work/first-tenant.bin" --output text 2>&1); then
    fail "second tenant decrypts the first tenant's ciphertext: $out"
  else
    expect_not_contains "second tenant cannot decrypt the first tenant's ciphertext" "$plaintext" "$out"
  fi

  echo "== authentication failures"
  expect_error InvalidSignatureException -- env -u AWS_PROFILE AWS_ACCESS_KEY_ID="$access_key" \
    AWS_SECRET_ACCESS_KEY="$wrong_secret" "$AWS" kms list-keys
  expect_error UnrecognizedClientException -- env -u AWS_PROFILE AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE \
    AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY "$AWS" kms list-keys
}

group_grants_and_policies() {
  echo "== grants (the seed's create-grant, list-grants, retire-grant, revoke-grant)"
  local gkey garn grant token partner="arn:aws:iam::444455556666:user/dev"
  gkey=$(run kms create-key --description "shared through grants" --query KeyMetadata.KeyId --output text)
  garn="arn:aws:kms:us-east-1:111122223333:key/$gkey"
  expect_error AccessDeniedException -- other kms encrypt --key-id "$garn" --plaintext fileb://"$work/plaintext.txt"
  grant=$(run kms create-grant --key-id "$gkey" --grantee-principal "$partner" \
    --operations Encrypt Decrypt DescribeKey \
    --constraints 'EncryptionContextSubset={Department=Finance}' --query GrantId --output text)
  expect_match "create-grant returns a grant id" '^[0-9a-f]{64}$' "$grant"
  expect_eq "list-grants shows the grant" "$grant $partner Finance" \
    "$(kms list-grants --key-id "$gkey" --query 'Grants[0].[GrantId,GranteePrincipal,Constraints.EncryptionContextSubset.Department]' --output text | tr '\t' ' ')"
  expect_eq "the grantee encrypts with a matching context" "$garn" \
    "$(other kms encrypt --key-id "$garn" --plaintext fileb://"$work/plaintext.txt" \
      --encryption-context Department=Finance --query KeyId --output text)"
  expect_error AccessDeniedException -- other kms encrypt --key-id "$garn" \
    --plaintext fileb://"$work/plaintext.txt" --encryption-context Department=HR
  run kms revoke-grant --key-id "$gkey" --grant-id "$grant" >/dev/null
  expect_error AccessDeniedException -- other kms encrypt --key-id "$garn" \
    --plaintext fileb://"$work/plaintext.txt" --encryption-context Department=Finance
  token=$(run kms create-grant --key-id "$gkey" --grantee-principal "$partner" --operations Decrypt \
    --retiring-principal "arn:aws:iam::111122223333:user/dev" --query GrantToken --output text)
  expect_eq "list-retirable-grants" "1" \
    "$(kms list-retirable-grants --retiring-principal arn:aws:iam::111122223333:user/dev --query 'length(Grants)' --output text)"
  run kms retire-grant --grant-token "$token" >/dev/null
  expect_eq "a retired grant is gone" "0" "$(kms list-grants --key-id "$gkey" --query 'length(Grants)' --output text)"
  expect_error InvalidGrantTokenException -- kms encrypt --key-id "$gkey" \
    --plaintext fileb://"$work/plaintext.txt" --grant-tokens not-a-grant-token

  echo "== key policies: sharing a key with another account"
  cat >"$work/shared-policy.json" <<JSON
{"Version": "2012-10-17", "Statement": [
  {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
   "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
  {"Sid": "Allow use of the key by the partner account", "Effect": "Allow",
   "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
   "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
   "Resource": "*"}]}
JSON
  run kms put-key-policy --key-id "$gkey" --policy-name default --policy file://"$work/shared-policy.json" >/dev/null
  expect_contains "get-key-policy shows the partner" "444455556666" \
    "$(kms get-key-policy --key-id "$gkey" --policy-name default --query Policy --output text)"
  other kms encrypt --key-id "$garn" --plaintext fileb://"$work/plaintext.txt" \
    --query CiphertextBlob --output text | b64file "$work/partner.bin"
  expect_eq "the partner account decrypts with the shared key" "$(cat "$work/plaintext.txt")" \
    "$(other kms decrypt --ciphertext-blob fileb://"$work/partner.bin" --query Plaintext --output text | base64 --decode)"
  expect_error NotFoundException -- other kms disable-key --key-id "$garn"
  expect_error MalformedPolicyDocumentException -- kms put-key-policy --key-id "$gkey" --policy-name default \
    --policy '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:Encrypt","Resource":"*"}]}'
}

# Asymmetric keys: sign with `aws kms sign`, verify with openssl and the public key from
# `aws kms get-public-key`. Runs alongside the grants group (after the audit checks,
# which count CreateKey calls).
group_asymmetric() {
  echo "== asymmetric keys: sign, verify, get-public-key (openssl verifies)"
  printf 'release artifact %s' "$plaintext" >"$work/to-sign.txt"
  local spec alg flag key sigopts
  for spec in ECC_NIST_P256:ECDSA_SHA_256:-sha256 RSA_2048:RSASSA_PSS_SHA_256:-sha256; do
    IFS=: read -r spec alg flag <<<"$spec"
    key=$(run kms create-key --key-spec "$spec" --key-usage SIGN_VERIFY --query KeyMetadata.KeyId --output text)
    expect_contains "describe-key lists $alg for $spec" "$alg" \
      "$(kms describe-key --key-id "$key" --query 'KeyMetadata.SigningAlgorithms' --output text)"
    expect_eq "get-public-key names $spec SIGN_VERIFY" "$spec SIGN_VERIFY" \
      "$(kms get-public-key --key-id "$key" --query '[KeySpec,KeyUsage]' --output text | tr '\t' ' ')"
    kms get-public-key --key-id "$key" --query PublicKey --output text | b64file "$work/$spec-pub.der"
    openssl pkey -pubin -inform DER -in "$work/$spec-pub.der" -out "$work/$spec-pub.pem" 2>/dev/null || true
    run kms sign --key-id "$key" --message "fileb://$work/to-sign.txt" --message-type RAW \
      --signing-algorithm "$alg" --query Signature --output text | b64file "$work/$spec.sig"
    sigopts=()
    [[ "$alg" == RSASSA_PSS_* ]] && sigopts=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest)
    expect_eq "openssl verifies the $alg signature of aws kms sign" "Verified OK" \
      "$(openssl dgst "$flag" -verify "$work/$spec-pub.pem" ${sigopts[@]+"${sigopts[@]}"} \
        -signature "$work/$spec.sig" "$work/to-sign.txt" 2>&1)"
    expect_eq "aws kms verify of the $alg signature" "True" \
      "$(kms verify --key-id "$key" --message "fileb://$work/to-sign.txt" --message-type RAW \
        --signing-algorithm "$alg" --signature "fileb://$work/$spec.sig" --query SignatureValid --output text)"
    expect_error KMSInvalidSignatureException -- kms verify --key-id "$key" --message "fileb://$work/plaintext.txt" \
      --signing-algorithm "$alg" --signature "fileb://$work/$spec.sig"
  done
}

groups=(group_keys_and_aliases group_crypto group_data_keys group_key_management group_deletion_tenants_auth)
for g in "${groups[@]}"; do
  "$g" >"$work/$g.log" 2>&1 3>&1 &
  group_pids+=($!)
done
for i in "${!groups[@]}"; do
  if ! wait "${group_pids[$i]}"; then fail "${groups[$i]} stopped early (see its log)"; fi
  cat "$work/${groups[$i]}.log"
done

# ========================================================================================
# The audit trail: aws cloudtrail lookup-events
# ========================================================================================
echo "== cloudtrail lookup-events"
# The lookups are independent: run them concurrently, each into its own file.
run trail --lookup-attributes AttributeKey=EventName,AttributeValue=CreateKey \
  --query 'Events[].[EventName, Resources[0].ResourceName]' --output text >"$work/ct-create-key" &
bg_pids+=($!)
run trail --lookup-attributes "AttributeKey=ResourceName,AttributeValue=$arn1" \
  --query "Events[].[EventName, contains(Resources[].ResourceName, '$arn1')]" --output text >"$work/ct-key1" &
bg_pids+=($!)
run trail --lookup-attributes "AttributeKey=ResourceName,AttributeValue=$arn4" \
  --query 'Events[].EventName' --output text >"$work/ct-key4" &
bg_pids+=($!)
run trail --lookup-attributes AttributeKey=EventName,AttributeValue=Decrypt \
  --query 'Events[].CloudTrailEvent' --output text >"$work/ct-decrypt" &
bg_pids+=($!)
run trail --output json >"$work/ct-account1.json" &
bg_pids+=($!)
run trail --query "Events[?contains(CloudTrailEvent, 'InvalidSignatureException')].[EventName,AccessKeyId]" \
  --output text >"$work/ct-bad-signature" &
bg_pids+=($!)
run other cloudtrail lookup-events --query 'Events[].[EventId,AccessKeyId,CloudTrailEvent]' \
  --output text >"$work/ct-account2" &
bg_pids+=($!)
wait_bg
created=$(cat "$work/ct-create-key")
expect_eq "lookup by EventName=CreateKey lists the four CreateKey events" \
  "$(words "CreateKey=$arn1 CreateKey=$arn2 CreateKey=$arn3 CreateKey=$arn4")" \
  "$(words "$(printf '%s\n' "$created" | tr '\t' '=')")"

by_key=$(cat "$work/ct-key1")
for name in CreateKey CreateAlias DescribeKey Encrypt Decrypt ReEncrypt GenerateDataKey GenerateDataKeyWithoutPlaintext; do
  expect_line "lookup by ResourceName=key ARN shows $name" "$name	True" "$by_key"
done
expect_not_contains "lookup by ResourceName=key ARN shows only that key's events" "False" "$by_key"
expect_not_contains "lookup by ResourceName=key ARN shows no other key's events" "ScheduleKeyDeletion" "$by_key"

by_key4=$(cat "$work/ct-key4")
expect_eq "events of the deleted-and-restored key" "CancelKeyDeletion CreateKey DescribeKey DescribeKey Encrypt ScheduleKeyDeletion" \
  "$(words "$by_key4")"

decrypts=$(cat "$work/ct-decrypt")
expect_match "a Decrypt event records errorCode InvalidCiphertextException" '"errorCode": ?"InvalidCiphertextException"' "$decrypts"
expect_match "a Decrypt event records errorCode IncorrectKeyException" '"errorCode": ?"IncorrectKeyException"' "$decrypts"
expect_match "Decrypt events record the encryption context" '"encryptionContext": ?\{[^}]*"Purpose": ?"Audit"' "$decrypts"

all_events=$(cat "$work/ct-account1.json")
expect_not_contains "no event contains the plaintext" "$plaintext" "$all_events"
expect_not_contains "no event contains the base64 plaintext" "$(printf '%s' "$plaintext" | base64 -w0)" "$all_events"
n=0
while read -r secret; do
  [ -n "$secret" ] || continue
  n=$((n + 1))
  expect_not_contains "no event contains returned secret #$n (data key / random bytes)" "$secret" "$all_events"
done <"$work/secrets"
expect_eq "three returned secrets were checked" "3" "$n"

bad_sig=$(cat "$work/ct-bad-signature")
expect_eq "the bad-signature call is in account 1's events" "ListKeys	$access_key" "$bad_sig"

other_events=$(cat "$work/ct-account2")
expect_match "the second account sees its own events" '"recipientAccountId": ?"444455556666"' "$other_events"
expect_not_contains "the second account sees no event of the first account's access key" "$access_key" "$other_events"
if [[ "$other_events" =~ \"recipientAccountId\":\ ?\"$account\" ]]; then
  fail "the second account sees events recorded for account $account"
else
  pass "the second account sees no event recorded for account $account"
fi
leaked=0
while read -r id; do
  [[ "$other_events" == *"$id"* ]] && leaked=$((leaked + 1))
done < <(grep -o '"EventId": "[^"]*"' "$work/ct-account1.json" | cut -d'"' -f4)
expect_eq "none of account 1's event ids appear in account 2's lookup" "0" "$leaked"

# ========================================================================================
# Grants, key policies, rotation and imported key material (after the audit checks,
# which count CreateKey calls)
# ========================================================================================
group_asymmetric >"$work/group_asymmetric.log" 2>&1 3>&1 &
asym_pid=$!
group_pids+=("$asym_pid")
group_grants_and_policies
if ! wait "$asym_pid"; then fail "group_asymmetric stopped early (see its log)"; fi
cat "$work/group_asymmetric.log"
echo "== key rotation"
rot_key=$(run kms create-key --description "Auto-rotating encryption key" --key-usage ENCRYPT_DECRYPT \
  --query 'KeyMetadata.KeyId' --output text)
run kms encrypt --key-id "$rot_key" --plaintext "fileb://$work/plaintext.txt" --query CiphertextBlob \
  --output text | b64file "$work/before-rotation.bin"
run kms enable-key-rotation --key-id "$rot_key" --rotation-period-in-days 180 >/dev/null
expect_eq "get-key-rotation-status" "True 180" \
  "$(kms get-key-rotation-status --key-id "$rot_key" --query '[KeyRotationEnabled,RotationPeriodInDays]' --output text | tr '\t' ' ')"
run kms rotate-key-on-demand --key-id "$rot_key" >/dev/null
expect_eq "list-key-rotations" "ON_DEMAND" \
  "$(kms list-key-rotations --key-id "$rot_key" --query 'Rotations[].RotationType' --output text)"
expect_eq "ciphertext from before the rotation still decrypts" "$plaintext" \
  "$(kms decrypt --ciphertext-blob "fileb://$work/before-rotation.bin" --query Plaintext --output text | base64 --decode)"
run kms disable-key-rotation --key-id "$rot_key" >/dev/null
expect_eq "rotation disabled" "False" \
  "$(kms get-key-rotation-status --key-id "$rot_key" --query KeyRotationEnabled --output text)"

echo "== key policy lockout safety check"
cat >"$work/locking-policy.json" <<'JSON'
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "kms:Encrypt", "Resource": "*"}]}
JSON
expect_error MalformedPolicyDocumentException -- kms put-key-policy --key-id "$rot_key" --policy-name default \
  --policy "file://$work/locking-policy.json"
run kms put-key-policy --key-id "$rot_key" --policy-name default --policy "file://$work/locking-policy.json" \
  --bypass-policy-lockout-safety-check >/dev/null

echo "== HMAC keys"
hmac_key=$(run kms create-key --key-spec HMAC_256 --key-usage GENERATE_VERIFY_MAC --query KeyMetadata.KeyId --output text)
run kms generate-mac --key-id "$hmac_key" --message "fileb://$work/plaintext.txt" --mac-algorithm HMAC_SHA_256 \
  --query Mac --output text | b64file "$work/mac.bin"
expect_eq "verify-mac" "True" "$(kms verify-mac --key-id "$hmac_key" --message "fileb://$work/plaintext.txt" \
  --mac-algorithm HMAC_SHA_256 --mac "fileb://$work/mac.bin" --query MacValid --output text)"
expect_error KMSInvalidMacException -- kms verify-mac --key-id "$hmac_key" --message "fileb://$work/plaintext.txt" \
  --mac-algorithm HMAC_SHA_256 --mac "$(printf 'forged-mac-bytes-forged-mac-byte' | base64)"

echo "== importing key material (the seed's BYOK procedure with openssl)"
byok_key=$(run kms create-key --description "Key with imported material" --origin EXTERNAL \
  --query 'KeyMetadata.KeyId' --output text)
expect_eq "a new EXTERNAL key waits for its material" "PendingImport" \
  "$(kms describe-key --key-id "$byok_key" --query KeyMetadata.KeyState --output text)"
run kms get-parameters-for-import --key-id "$byok_key" --wrapping-algorithm RSAES_OAEP_SHA_256 \
  --wrapping-key-spec RSA_2048 --query '{PublicKey:PublicKey,ImportToken:ImportToken}' >"$work/import-params.json"
python3 - "$work" <<'PY'
import base64, json, sys
work = sys.argv[1]
params = json.load(open(f"{work}/import-params.json"))
open(f"{work}/wrapping-key.bin", "wb").write(base64.b64decode(params["PublicKey"]))
open(f"{work}/import-token.bin", "wb").write(base64.b64decode(params["ImportToken"]))
PY
openssl rand -out "$work/key-material.bin" 32
openssl pkeyutl -encrypt -in "$work/key-material.bin" -out "$work/encrypted-key-material.bin" \
  -inkey "$work/wrapping-key.bin" -keyform DER -pubin -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256
run kms import-key-material --key-id "$byok_key" --encrypted-key-material "fileb://$work/encrypted-key-material.bin" \
  --import-token "fileb://$work/import-token.bin" --expiration-model KEY_MATERIAL_DOES_NOT_EXPIRE >/dev/null
expect_eq "imported key is Enabled" "Enabled EXTERNAL" \
  "$(kms describe-key --key-id "$byok_key" --query 'KeyMetadata.[KeyState,Origin]' --output text | tr '\t' ' ')"
run kms encrypt --key-id "$byok_key" --plaintext "fileb://$work/plaintext.txt" --query CiphertextBlob \
  --output text | b64file "$work/byok.bin"
expect_eq "imported key round trip" "$plaintext" \
  "$(kms decrypt --ciphertext-blob "fileb://$work/byok.bin" --query Plaintext --output text | base64 --decode)"
run kms delete-imported-key-material --key-id "$byok_key" >/dev/null
expect_eq "deleted material: PendingImport again" "PendingImport" \
  "$(kms describe-key --key-id "$byok_key" --query KeyMetadata.KeyState --output text)"
expect_error KMSInvalidStateException -- kms decrypt --ciphertext-blob "fileb://$work/byok.bin"

# ========================================================================================
passed=$(grep -c '^pass$' "$results" || true)
failed=$(grep -c '^fail$' "$results" || true)
echo
echo "elapsed $(($(date +%s) - started)) s"
if [ "$failed" -ne 0 ]; then
  show_logs
  logs_shown=1
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "$passed passed, $failed failed"
