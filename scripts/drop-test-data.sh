#!/usr/bin/env bash
# Drops what earlier test runs left behind in the test database: schemas
# named t_<uuid> and databases named cmdbus_<uuid>. Run before a test run,
# never during one.
set -euo pipefail
url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
psql "$url" -qtA -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$' LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', name);
    END LOOP;
END $$;
SQL
for db in $(psql "$url" -qtA -c "SELECT datname FROM pg_database WHERE datname ~ '^cmdbus_[0-9a-f]{32}$'"); do
    psql "$url" -qtA -c "DROP DATABASE \"$db\" WITH (FORCE)" >/dev/null
done
