#!/bin/sh
# A Debian 12 base image made from the Debian archive, for machines that reach no
# container registry: mmdebstrap writes a minimal root file system as a tarball and
# podman imports it as localhost/debian:bookworm-slim. Then:
#   podman build --build-arg BASE=localhost/debian:bookworm-slim -t assay -f Containerfile .
set -eu
# Without DEBIAN_MIRROR, mmdebstrap uses the apt sources of this machine.
out="${1:-/tmp/debian-bookworm-slim.tar}"
mmdebstrap --variant=apt --include=ca-certificates bookworm "$out" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"}
podman import "$out" localhost/debian:bookworm-slim
