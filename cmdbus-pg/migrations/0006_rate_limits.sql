-- cmdbus schema, version 6: rate limits beside concurrency limits.
-- `{schema}` is replaced by the quoted schema name.
--
-- A token bucket per limited target: `tokens` as of `refilled_at`, refilled
-- at per_second up to one second's worth (at least 1). The lease that holds
-- the row's lock spends them.
ALTER TABLE {schema}.limits ALTER COLUMN max_in_flight DROP NOT NULL;
ALTER TABLE {schema}.limits
    ADD COLUMN per_second  double precision CHECK (per_second > 0),
    ADD COLUMN tokens      double precision NOT NULL DEFAULT 0,
    ADD COLUMN refilled_at timestamptz      NOT NULL DEFAULT now(),
    ADD CONSTRAINT limits_kind_check CHECK (max_in_flight IS NOT NULL OR per_second IS NOT NULL);

INSERT INTO {schema}.schema_migrations (version, name) VALUES (6, 'rate_limits');
