#!/usr/bin/env bash
# End-to-end scenario with the real `aws` CLI, following the CLI commands of the seed
# documents: keys, aliases, encryption with encryption context, data keys, re-encryption,
# enable/disable, tags, policies, scheduled deletion, tenant isolation, authentication
# failures and `aws cloudtrail lookup-events`. It starts its own nats-server and
# kms-server on free ports in a temp directory and cleans up after itself.
set -euo pipefail

BIN=${KMS_SERVER_BIN:-target/debug/kms-server}
AWS=${AWS_CLI:-aws}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(free_port)
api_port=$(free_port)
nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$work/nats" >"$work/nats.log" 2>&1 &
pids+=($!)
"$BIN" dev-init --data-dir "$work/data" --endpoint "http://127.0.0.1:$api_port" --region us-east-1 >"$work/env.sh"
# shellcheck disable=SC1091
source "$work/env.sh"
"$BIN" run --data-dir "$work/data" --nats-url "nats://127.0.0.1:$nats_port" \
  --listen "127.0.0.1:$api_port" >"$work/server.log" 2>&1 &
pids+=($!)

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() {
  failed=$((failed + 1))
  echo "FAIL: $*" >&2
}
expect_eq() { # name expected actual
  if [ "$2" == "$3" ]; then pass; else fail "$1: expected '$2', got '$3'"; fi
}
expect_contains() { # name needle haystack
  if [[ "$3" == *"$2"* ]]; then pass; else fail "$1: '$2' not found in: ${3:0:400}"; fi
}
expect_absent() { # name needle haystack
  if [[ "$3" != *"$2"* ]]; then pass; else fail "$1: '$2' must not appear"; fi
}
expect_error() { # name code command...
  local name=$1 code=$2
  shift 2
  local err
  if err=$("$@" 2>&1 >/dev/null); then
    fail "$name: expected $code, the call succeeded"
  elif [[ "$err" == *"($code)"* ]]; then
    pass
  else
    fail "$name: expected $code, got: $err"
  fi
}
kms() { "$AWS" kms "$@"; }

# Ready when every service answers (a real call, polled; no fixed sleep).
for _ in $(seq 1 300); do
  if kms list-keys >/dev/null 2>&1 && kms generate-random --number-of-bytes 1 >/dev/null 2>&1 \
    && "$AWS" cloudtrail lookup-events --max-results 1 >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
kms list-keys >/dev/null || { cat "$work/server.log"; exit 1; }

account=111122223333

# --- keys ---------------------------------------------------------------------------
key1=$(kms create-key --description "My application encryption key" --key-usage ENCRYPT_DECRYPT \
  --origin AWS_KMS --query KeyMetadata.KeyId --output text)
key2=$(kms create-key --description "Production database encryption key" --key-usage ENCRYPT_DECRYPT \
  --tags TagKey=Environment,TagValue=Production TagKey=Application,TagValue=Database \
  --query KeyMetadata.KeyId --output text)
arn1="arn:aws:kms:us-east-1:$account:key/$key1"
expect_eq "create-key state" "Enabled" "$(kms describe-key --key-id "$key1" --query KeyMetadata.KeyState --output text)"
expect_eq "describe by arn" "$key1" "$(kms describe-key --key-id "$arn1" --query KeyMetadata.KeyId --output text)"
expect_eq "tags at creation (sorted by key)" "Database	Production" \
  "$(kms list-resource-tags --key-id "$key2" --query 'Tags[].TagValue' --output text)"
expect_eq "list-keys" "2" "$(kms list-keys --query 'length(Keys)' --output text)"
page=$(kms list-keys --limit 1 --query '[Truncated, length(Keys)]' --output text)
expect_eq "list-keys --limit 1" "True	1" "$page"
expect_error "describe unknown key" NotFoundException kms describe-key --key-id 00000000-1111-2222-3333-444444444444

# --- aliases --------------------------------------------------------------------------
kms create-alias --alias-name alias/my-application-key --target-key-id "$key1"
expect_eq "describe by alias" "$key1" \
  "$(kms describe-key --key-id alias/my-application-key --query KeyMetadata.KeyId --output text)"
expect_eq "describe by alias arn" "$key1" \
  "$(kms describe-key --key-id "arn:aws:kms:us-east-1:$account:alias/my-application-key" --query KeyMetadata.KeyId --output text)"
expect_eq "list-aliases" "alias/my-application-key" "$(kms list-aliases --query 'Aliases[].AliasName' --output text)"
expect_eq "list-aliases --key-id" "alias/my-application-key" \
  "$(kms list-aliases --key-id "$key1" --query 'Aliases[].AliasName' --output text)"
kms update-alias --alias-name alias/my-application-key --target-key-id "$key2"
expect_eq "update-alias" "$key2" \
  "$(kms describe-key --key-id alias/my-application-key --query KeyMetadata.KeyId --output text)"
kms update-alias --alias-name alias/my-application-key --target-key-id "$key1"
kms create-alias --alias-name alias/old-application-key --target-key-id "$key2"
kms delete-alias --alias-name alias/old-application-key
expect_error "deleted alias" NotFoundException kms describe-key --key-id alias/old-application-key
expect_error "reserved alias" NotAuthorizedException kms create-alias --alias-name alias/aws/s3 --target-key-id "$key1"
expect_error "alias without prefix" ValidationException kms create-alias --alias-name my-key --target-key-id "$key1"
expect_error "duplicate alias" AlreadyExistsException \
  kms create-alias --alias-name alias/my-application-key --target-key-id "$key2"

# --- encrypt / decrypt ----------------------------------------------------------------
secret="CLI-SCENARIO-SECRET-$RANDOM-$RANDOM"
printf '%s' "$secret" >"$work/plaintext.txt"
kms encrypt --key-id alias/my-application-key --plaintext "fileb://$work/plaintext.txt" \
  --encryption-context Department=Finance,Purpose=Audit --query CiphertextBlob --output text \
  | base64 --decode >"$work/encrypted.bin"
kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin" --encryption-context Department=Finance,Purpose=Audit \
  --query Plaintext --output text | base64 --decode >"$work/decrypted.txt"
if cmp -s "$work/plaintext.txt" "$work/decrypted.txt"; then pass; else fail "decrypt round trip"; fi
expect_eq "decrypt names the key" "$arn1" "$(kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin" \
  --encryption-context Department=Finance,Purpose=Audit --query KeyId --output text)"
expect_error "decrypt without context" InvalidCiphertextException kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin"
expect_error "decrypt with other context" InvalidCiphertextException \
  kms decrypt --ciphertext-blob "fileb://$work/encrypted.bin" --encryption-context Department=Finance
python3 - "$work/encrypted.bin" "$work/tampered.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[-5] ^= 0x01
open(sys.argv[2], "wb").write(data)
PY
expect_error "tampered ciphertext" InvalidCiphertextException \
  kms decrypt --ciphertext-blob "fileb://$work/tampered.bin" --encryption-context Department=Finance,Purpose=Audit
expect_error "decrypt with wrong key id" IncorrectKeyException kms decrypt --key-id "$key2" \
  --ciphertext-blob "fileb://$work/encrypted.bin" --encryption-context Department=Finance,Purpose=Audit
head -c 4097 /dev/zero >"$work/too-big.bin"
expect_error "plaintext over 4096 bytes" ValidationException \
  kms encrypt --key-id "$key1" --plaintext "fileb://$work/too-big.bin"

# --- re-encrypt -----------------------------------------------------------------------
kms re-encrypt --ciphertext-blob "fileb://$work/encrypted.bin" --source-encryption-context Department=Finance,Purpose=Audit \
  --destination-key-id "$key2" --destination-encryption-context Department=Finance,Rotated=true \
  --query CiphertextBlob --output text | base64 --decode >"$work/rotated.bin"
expect_eq "re-encrypted plaintext" "$secret" "$(kms decrypt --ciphertext-blob "fileb://$work/rotated.bin" \
  --encryption-context Department=Finance,Rotated=true --query Plaintext --output text | base64 --decode)"

# --- data keys and random bytes -------------------------------------------------------
kms generate-data-key --key-id alias/my-application-key --key-spec AES_256 \
  --encryption-context Application=MyApp,Environment=Production >"$work/datakey.json"
data_key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Plaintext"])' "$work/datakey.json")
expect_eq "data key length" "32" "$(printf '%s' "$data_key" | base64 --decode | wc -c | tr -d ' ')"
python3 -c 'import json,sys,base64; open(sys.argv[2],"wb").write(base64.b64decode(json.load(open(sys.argv[1]))["CiphertextBlob"]))' \
  "$work/datakey.json" "$work/datakey.bin"
expect_eq "data key decrypts to itself" "$data_key" "$(kms decrypt --ciphertext-blob "fileb://$work/datakey.bin" \
  --encryption-context Application=MyApp,Environment=Production --query Plaintext --output text)"
expect_eq "number-of-bytes 32" "32" "$(kms generate-data-key --key-id alias/my-application-key --number-of-bytes 32 \
  --query Plaintext --output text | base64 --decode | wc -c | tr -d ' ')"
without=$(kms generate-data-key-without-plaintext --key-id alias/my-application-key --key-spec AES_256)
expect_absent "without-plaintext has no Plaintext" '"Plaintext"' "$without"
expect_contains "without-plaintext has a blob" '"CiphertextBlob"' "$without"
kms generate-random --number-of-bytes 32 --query Plaintext --output text | base64 --decode >"$work/random_bytes.bin"
expect_eq "generate-random" "32" "$(wc -c <"$work/random_bytes.bin" | tr -d ' ')"
expect_error "generate-random 1025" ValidationException kms generate-random --number-of-bytes 1025

# --- enable / disable, description, tags ---------------------------------------------
kms disable-key --key-id "$key1"
expect_error "encrypt with disabled key" DisabledException kms encrypt --key-id "$key1" --plaintext "fileb://$work/plaintext.txt"
kms enable-key --key-id alias/my-application-key
kms encrypt --key-id "$key1" --plaintext "fileb://$work/plaintext.txt" >/dev/null && pass
kms update-key-description --key-id "$key1" --description "renamed"
expect_eq "update-key-description" "renamed" "$(kms describe-key --key-id "$key1" --query KeyMetadata.Description --output text)"
kms tag-resource --key-id "$key1" --tags TagKey=CostCenter,TagValue=Engineering TagKey=Owner,TagValue=SecurityTeam
expect_eq "tag-resource" "CostCenter Owner" "$(kms list-resource-tags --key-id "$key1" --query 'Tags[].TagKey' --output text | tr '\t' ' ')"
kms untag-resource --key-id "$key1" --tag-keys CostCenter Owner
expect_eq "untag-resource" "0" "$(kms list-resource-tags --key-id "$key1" --query 'length(Tags)' --output text)"

# --- key policies ---------------------------------------------------------------------
expect_contains "default policy" "arn:aws:iam::$account:root" "$(kms get-key-policy --key-id "$key1" --policy-name default --output text)"
cat >"$work/key-policy.json" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Enable IAM User Permissions", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::$account:root"}, "Action": "kms:*", "Resource": "*"},
    {"Sid": "Allow use of the key for encryption", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::$account:role/MyAppRole"},
     "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
     "Resource": "*"}
  ]
}
JSON
kms put-key-policy --key-id "$key1" --policy-name default --policy "file://$work/key-policy.json"
expect_contains "put-key-policy" "Allow use of the key for encryption" "$(kms get-key-policy --key-id "$key1" --policy-name default --output text)"
echo '{"Statement": [' >"$work/bad-policy.json"
expect_error "malformed policy" MalformedPolicyDocumentException \
  kms put-key-policy --key-id "$key1" --policy-name default --policy "file://$work/bad-policy.json"
expect_eq "list-key-policies" "default" "$(kms list-key-policies --key-id "$key1" --query 'PolicyNames[]' --output text)"

# --- scheduled deletion ---------------------------------------------------------------
expect_error "pending window 6" ValidationException kms schedule-key-deletion --key-id "$key2" --pending-window-in-days 6
scheduled=$(kms schedule-key-deletion --key-id "$key2" --pending-window-in-days 7 --query '[KeyState, DeletionDate != `null`]' --output text)
expect_eq "schedule-key-deletion" "PendingDeletion	True" "$scheduled"
expect_error "encrypt pending deletion" KMSInvalidStateException kms encrypt --key-id "$key2" --plaintext "fileb://$work/plaintext.txt"
kms cancel-key-deletion --key-id "$key2" >/dev/null
expect_eq "cancelled deletion leaves the key disabled" "Disabled" \
  "$(kms describe-key --key-id "$key2" --query KeyMetadata.KeyState --output text)"

# --- tenant isolation -----------------------------------------------------------------
other=(--profile kms-dev-444455556666)
expect_error "other tenant describe" NotFoundException "$AWS" "${other[@]}" kms describe-key --key-id "$arn1"
expect_error "other tenant decrypt" InvalidCiphertextException "$AWS" "${other[@]}" kms decrypt \
  --ciphertext-blob "fileb://$work/encrypted.bin" --encryption-context Department=Finance,Purpose=Audit
expect_eq "other tenant list-keys" "0" "$("$AWS" "${other[@]}" kms list-keys --query 'length(Keys)' --output text)"
"$AWS" "${other[@]}" kms create-key --description "tenant B" >/dev/null

# --- authentication failures ----------------------------------------------------------
access_key=$("$AWS" configure get aws_access_key_id)
expect_error "bad secret" InvalidSignatureException env -u AWS_PROFILE AWS_ACCESS_KEY_ID="$access_key" \
  AWS_SECRET_ACCESS_KEY=wrongwrongwrongwrongwrongwrongwrongwrong "$AWS" kms list-keys
expect_error "unknown access key" UnrecognizedClientException env -u AWS_PROFILE AWS_ACCESS_KEY_ID=AKIAUNKNOWN000000000 \
  AWS_SECRET_ACCESS_KEY=wrongwrongwrongwrongwrongwrongwrongwrong "$AWS" kms list-keys

# --- the audit trail ------------------------------------------------------------------
trail() { "$AWS" cloudtrail lookup-events "$@"; }
expect_eq "lookup CreateKey" "2" "$(trail --lookup-attributes AttributeKey=EventName,AttributeValue=CreateKey \
  --query 'length(Events)' --output text)"
by_resource=$(trail --lookup-attributes "AttributeKey=ResourceName,AttributeValue=$arn1" --query 'Events[].EventName' --output text)
for name in CreateKey CreateAlias Encrypt Decrypt DisableKey EnableKey TagResource PutKeyPolicy; do
  expect_contains "events of key1 include $name" "$name" "$by_resource"
done
decrypts=$(trail --lookup-attributes AttributeKey=EventName,AttributeValue=Decrypt --query 'Events[].CloudTrailEvent' --output text)
expect_contains "failed decrypt recorded" '"errorCode":"InvalidCiphertextException"' "$decrypts"
expect_contains "encryption context recorded" '"Department":"Finance"' "$decrypts"
all_events=$(trail --query 'Events[].CloudTrailEvent' --output text)
expect_absent "no plaintext in audit" "$secret" "$all_events"
expect_absent "no base64 plaintext in audit" "$(printf '%s' "$secret" | base64)" "$all_events"
expect_absent "no data key in audit" "$data_key" "$all_events"
expect_contains "bad signature recorded" '"errorCode":"InvalidSignatureException"' "$all_events"
other_events=$("$AWS" "${other[@]}" cloudtrail lookup-events --query 'Events[].CloudTrailEvent' --output text)
expect_absent "other tenant sees no event of account 1" "\"recipientAccountId\":\"$account\"" "$other_events"
expect_contains "other tenant sees its own" '"recipientAccountId":"444455556666"' "$other_events"

echo
if [ "$failed" -eq 0 ]; then
  echo "cli: $passed passed, $failed failed"
else
  echo "--- server log (tail) ---" >&2
  tail -50 "$work/server.log" >&2
  echo "cli: $passed passed, $failed failed"
  exit 1
fi
