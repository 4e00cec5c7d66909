#!/usr/bin/env bash
# Runs the demo against PostgreSQL: $DATABASE_URL if set, else 127.0.0.1:5432
# (starting the machine's cluster if it is down), else a private throwaway
# cluster built from the installed PostgreSQL binaries (installed with apt-get
# when missing and running as root).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
run_demo() {
    echo "demo: building the demo and the cmdbus CLI (a few minutes on a cold machine)..." >&2
    cargo build -p cmdbus-examples --example demo -p cmdbus-cli
    echo >&2
    "$target/debug/examples/demo"
    echo
    if [ -n "${throwaway:-}" ]; then
        echo "(This ran on a throwaway cluster, removed now; set DATABASE_URL to keep the data.)"
    else
        echo "Look at it as an operator would:"
        echo "  DATABASE_URL=$DATABASE_URL $target/debug/cmdbus --schema cmdbus_demo tsq list"
        echo "  DATABASE_URL=$DATABASE_URL $target/debug/cmdbus --schema cmdbus_demo stats"
    fi
}

if [ -n "${DATABASE_URL:-}" ] && [ "${DATABASE_URL}" != "postgres://postgres@127.0.0.1:5432/postgres" ]; then
    run_demo
    exit
fi
if ./scripts/ensure-postgres.sh 2>/dev/null; then
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
    run_demo
    exit
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bindir" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "demo: no PostgreSQL found; installing it with apt-get" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
    else
        echo "demo: no PostgreSQL reachable and none installed; set DATABASE_URL" >&2
        exit 1
    fi
fi
dir=$(mktemp -d /tmp/cmdbus-demo-pg.XXXXXX)
port=54329
echo "demo: no server at 127.0.0.1:5432; starting a throwaway cluster in $dir on port $port" >&2
runas=()
if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    runas=(runuser -u postgres --)
fi
"${runas[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
"${runas[@]}" "$bindir/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -h 127.0.0.1" -l "$dir/log" -w start >/dev/null
trap '"${runas[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null; rm -rf "$dir"' EXIT
export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
throwaway=1
run_demo
