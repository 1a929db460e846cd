#!/bin/sh
# Build the expertd image without pulling anything: compile static binaries (CGO_ENABLED=0) into
# build/ on the host, then `docker build` copies them FROM scratch. Needs go and docker on PATH.
#
# Usage: scripts/docker-build.sh [TAG]    (TAG default: $EXPERTD_IMAGE, else expertd:dev)
set -eu
cd "$(dirname "$0")/.."
tag=${1:-${EXPERTD_IMAGE:-expertd:dev}}

mkdir -p build/rootfs/data build/rootfs/tmp
export CGO_ENABLED=0
go build -trimpath -ldflags='-s -w' -o build/expertd ./cmd/expertd
go build -trimpath -ldflags='-s -w' -o build/expertd-demo ./deploy/demo
docker build -t "$tag" .
