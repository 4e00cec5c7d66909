#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at $DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/postgres). If none does and the machine
# has a cluster managed by pg_ctlcluster, starts it.
set -euo pipefail

host=127.0.0.1
port=5432
if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then
    exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    echo "ensure-postgres: starting PostgreSQL $version cluster 'main'" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        pg_isready -q -h "$host" -p "$port" && exit 0
        sleep 1
    done
fi
echo "ensure-postgres: no PostgreSQL at $host:$port; set DATABASE_URL to a reachable server" >&2
exit 1
