# syntax=docker/dockerfile:1
# The kms image: every service binary (kms-gateway, kms-metadata, kms-policy, kms-crypto,
# kms-audit, and the all-in-one kms-server) on a minimal Debian root that holds only the C
# library, run as the non-root user 65532. Built without any image registry (`make
# image`): the base is a Debian bookworm root made by mmdebstrap and imported as
# localhost/kms-base (scripts/image.sh), and the binaries are compiled by cargo on the
# build host (no Rust toolchain image can be pulled here) and staged under target/image/bin.
ARG BASE_IMAGE=localhost/kms-base:bookworm

# Stage 1: the release binaries, and the files that make the non-root user.
FROM scratch AS binaries
COPY target/image/bin/ /usr/local/bin/
COPY deploy/image/passwd deploy/image/group /etc/

# Stage 2: the runtime: libc and libgcc_s from Debian, the binaries, nothing else (no
# shell, no package manager).
FROM ${BASE_IMAGE}
COPY --from=binaries /etc/passwd /etc/group /etc/
COPY --from=binaries /usr/local/bin/ /usr/local/bin/
COPY --chown=65532:65532 deploy/image/data/ /var/lib/kms/
ENV KMS_LOG_FORMAT=json
USER 65532:65532
WORKDIR /var/lib/kms
EXPOSE 4566 8081
CMD ["/usr/local/bin/kms-server", "--help"]
