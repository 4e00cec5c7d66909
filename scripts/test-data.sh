#!/usr/bin/env bash
# The test server is shared with other checkouts and CI jobs. Every schema,
# database and role this checkout's tests create is named t_<tag>_…, where
# <tag> identifies the checkout (cmdbus_tests::checkout_tag computes the same).
#
#   test-data.sh tag     prints the tag
#   test-data.sh sweep   drops this checkout's test objects, nothing else
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
    local prefix
    prefix="t_$(tag)_"
    # One statement per object: one big transaction runs out of lock slots.
    psql "$url" -qtA -v ON_ERROR_STOP=1 -v prefix="$prefix" >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace WHERE starts_with(nspname, :'prefix') \gexec
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database WHERE starts_with(datname, :'prefix') \gexec
SELECT format('DROP OWNED BY %I', rolname) FROM pg_roles WHERE starts_with(rolname, :'prefix') \gexec
SELECT format('DROP ROLE %I', rolname) FROM pg_roles WHERE starts_with(rolname, :'prefix') \gexec
SQL
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
