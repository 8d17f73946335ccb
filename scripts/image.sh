#!/usr/bin/env bash
# Builds the kms image (Dockerfile) without any image registry:
#   1. release binaries of every service, compiled here by cargo, staged in target/image/bin;
#   2. a base image: Debian bookworm's libc6 and libgcc-s1 extracted by mmdebstrap from
#      Debian's package archive, imported as localhost/kms-base:bookworm;
#   3. the image itself, localhost/kms:$TAG, with podman (runtime runc) or docker.
# Without an engine (none installed, none installable, or one that cannot run here) it
# says so and exits 0 after step 1, so CI without an engine stays green.
# IMAGE_ENGINE=podman|docker picks one; TAG (default dev) names the image.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-dev}
BINS=(kms-gateway kms-metadata kms-policy kms-crypto kms-audit kms-server)
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

echo "== release binaries"
target=${CARGO_TARGET_DIR:-target}
CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release $(printf -- '-p %s ' "${BINS[@]}")
rm -rf target/image/bin && mkdir -p target/image/bin
for b in "${BINS[@]}"; do install -m 0755 "$target/release/$b" target/image/bin/; done
ls -lh target/image/bin

engine=${IMAGE_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null; then engine=podman
  elif docker info >/dev/null 2>&1; then engine=docker
  else
    echo "== no container engine: installing podman and runc from Debian"
    { $SUDO apt-get install -y -qq podman runc mmdebstrap >/dev/null 2>&1 && engine=podman; } || true
  fi
fi
if [ -z "$engine" ]; then
  echo "make image: no container engine (podman or a running docker) here and none installable;"
  echo "the binaries are staged in target/image/bin. Build elsewhere with: podman build -t kms ."
  exit 0
fi
run_opts=()
build_opts=()
if [ "$engine" = podman ]; then
  run_opts=(--runtime runc)
  build_opts=(--runtime runc)
fi

echo "== base image (mmdebstrap)"
command -v mmdebstrap >/dev/null || $SUDO apt-get install -y -qq mmdebstrap >/dev/null
if ! $engine image exists localhost/kms-base:bookworm 2>/dev/null \
   && ! $engine image inspect localhost/kms-base:bookworm >/dev/null 2>&1; then
  rootfs=$(mktemp --suffix=.tar)
  mmdebstrap --quiet --variant=extract --include=libc6,libgcc-s1 --format=tar \
    bookworm "$rootfs" "deb http://deb.debian.org/debian bookworm main"
  $engine import "$rootfs" localhost/kms-base:bookworm >/dev/null
  rm -f "$rootfs"
fi

echo "== image ($engine)"
if ! $engine build "${build_opts[@]}" -t "localhost/kms:$TAG" .; then
  echo "make image: $engine could not build here (see above); the binaries are staged in target/image/bin"
  exit 0
fi

echo "== smoke test: the binaries start as the non-root user"
# Containers here may not raise rlimits: ask for small ones.
if out=$($engine run --rm "${run_opts[@]}" --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
      --entrypoint /usr/local/bin/kms-gateway "localhost/kms:$TAG" --help 2>&1); then
  echo "$out" | head -3
  echo "user: $($engine image inspect --format '{{.Config.User}}' "localhost/kms:$TAG")"
else
  echo "make image: built, but $engine cannot run containers here: $out" | head -3
fi
$engine images "localhost/kms:$TAG"
