#!/usr/bin/env bash
# Starts what the tests use: PostgreSQL 15 (password auth on 127.0.0.1) and a Docker engine
# with no bridge network, then builds the sandbox image once (cached afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# PostgreSQL
if command -v pg_ctlcluster >/dev/null; then
    cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1" "$2}')
    if [ -z "$cluster" ]; then
        $SUDO pg_createcluster 15 main
        cluster="15 main"
    fi
    # shellcheck disable=SC2086
    pg_lsclusters -h | grep -q online || $SUDO pg_ctlcluster $cluster start
fi
for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -q && break
    sleep 1
done
pg_isready -h 127.0.0.1 -q || { echo "services: PostgreSQL did not start" >&2; exit 1; }
$SUDO -u postgres psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 \
    || su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null

# Docker engine (no registry here: images are built locally)
if ! docker info >/dev/null 2>&1; then
    mkdir -p /var/log
    nohup $SUDO dockerd --bridge=none >/var/log/ise-es-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { echo "services: dockerd did not start (see /var/log/ise-es-dockerd.log)" >&2; exit 1; }
fi
if .venv/bin/ise-es sandbox --help >/dev/null 2>&1; then
    .venv/bin/ise-es sandbox build-image
fi
