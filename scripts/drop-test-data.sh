#!/usr/bin/env bash
# Drops what earlier test runs left behind in the test database: schemas
# named t_<uuid> and databases named cmdbus_<uuid>. Run before a test run,
# never during one. Each drop is its own transaction (one big one runs out
# of lock slots).
set -euo pipefail
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
psql "$url" -qtA -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT format('DROP SCHEMA %I CASCADE', nspname) FROM pg_namespace WHERE nspname ~ '^(t|bench|bench_base)_[0-9a-f]{32}$' \gexec
SELECT format('DROP DATABASE %I WITH (FORCE)', datname) FROM pg_database WHERE datname ~ '^cmdbus_[0-9a-f]{32}$' \gexec
SQL
