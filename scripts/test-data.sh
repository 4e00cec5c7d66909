#!/usr/bin/env bash
# The test server is shared with other checkouts and CI jobs. Every schema,
# database and role this checkout's tests create is named t_<tag>_…, where
# <tag> identifies the checkout (cmdbus_tests::checkout_tag computes the same),
# and recorded by name in the ledger target/test-data/created
# (cmdbus_tests::fresh_name) before it is created.
#
#   test-data.sh tag     prints the tag
#   test-data.sh sweep   drops exactly the objects the ledger names (no
#                        pattern, no FORCE), then forgets them
#   test-data.sh run CMD runs CMD holding this checkout's test lock, with a
#                        sweep before (leftovers of a crashed run) and after
#                        (also when CMD fails)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd -P)
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

# FNV-1a, 32 bit, over the bytes of the tests crate's absolute path.
tag() {
    local path="$root/tests" hash=2166136261 i byte
    local LC_ALL=C
    for ((i = 0; i < ${#path}; i++)); do
        printf -v byte '%d' "'${path:i:1}"
        hash=$(( ((hash ^ byte) * 16777619) & 0xffffffff ))
    done
    printf '%08x\n' "$hash"
}

sweep() {
    local ledger="$root/target/test-data/created"
    [ -s "$ledger" ] || return 0
    # Names recorded from now on go to a fresh ledger.
    local taken="$ledger.$$"
    mv "$ledger" "$taken"
    # Names are [a-z0-9_] (fresh_name), so they form an array literal as is.
    local names
    names="{$(sort -u "$taken" | paste -sd, -)}"
    # One statement per object: one big transaction runs out of lock slots.
    if ! psql "$url" -qtA -v ON_ERROR_STOP=1 -v names="$names" >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace WHERE nspname = ANY(:'names'::text[]) \gexec
SELECT format('DROP DATABASE %I', datname) FROM pg_database WHERE datname = ANY(:'names'::text[]) \gexec
SELECT format('DROP OWNED BY %I', rolname) FROM pg_roles WHERE rolname = ANY(:'names'::text[]) \gexec
SELECT format('DROP ROLE %I', rolname) FROM pg_roles WHERE rolname = ANY(:'names'::text[]) \gexec
SQL
    then
        # Keep them for the next sweep.
        cat "$taken" >> "$ledger"
        rm -f "$taken"
        echo "test-data: some test objects could not be dropped; kept in $ledger" >&2
        return 1
    fi
    rm -f "$taken"
}

case "${1:-}" in
    tag) tag ;;
    sweep) sweep ;;
    run)
        shift
        mkdir -p "$root/target"
        exec 9>"$root/target/.test-data.lock"
        if ! flock -n 9; then
            echo "test-data: another test run of this checkout is under way; waiting for it" >&2
            flock 9
        fi
        sweep
        trap sweep EXIT
        "$@"
        ;;
    *) echo "usage: $0 tag | sweep | run COMMAND..." >&2; exit 2 ;;
esac
