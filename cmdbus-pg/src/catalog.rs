//! The command-type catalog on PostgreSQL (`command_types`).

use std::collections::HashMap;

use cmdbus::{Catalog, CatalogEntry, CommandType, Error, LIVE_WITHIN, Registered, Result};
use sqlx::{AssertSqlSafe, Row, postgres::PgRow};

use crate::{pool_timeout::Explain, rows::db, transport::PgTransport};

/// Records `types`, one version per distinct definition. Registrations are
/// serialized by a transaction-scoped advisory lock, so two processes with
/// two new definitions of one type number them one after the other.
pub(crate) async fn register(
    transport: &PgTransport,
    types: Vec<CommandType>,
    served: bool,
) -> Result<Vec<Registered>> {
    if types.is_empty() {
        return Ok(Vec::new());
    }
    // One row per type: a statement may not touch a row twice.
    let mut unique: Vec<&CommandType> = Vec::with_capacity(types.len());
    for definition in &types {
        let same = |t: &&mut &CommandType| {
            t.domain == definition.domain && t.command_type == definition.command_type
        };
        match unique.iter_mut().find(same) {
            Some(kept) => *kept = definition,
            None => unique.push(definition),
        }
    }
    let input = serde_json::to_string(&unique)
        .map_err(|e| Error::backend("encoding command types for the catalog", e))?;
    // Senders may only stamp `last_seen_at`; workers stamp `last_served_at` too.
    let served_set = if served { ", last_served_at = now()" } else { "" };
    let schema = transport.schema_ref();
    let sql = schema.render(&REGISTER.replace("{served_set}", served_set));
    let pool = transport.pool();
    let mut tx = schema.begin_locked(pool, "catalog").await?;
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(input)
        .bind(served)
        .fetch_all(&mut *tx)
        .await
        .map_err(db("recording command types"))?;
    tx.commit().await.map_err(db("committing command types"))?;
    let mut found: HashMap<(String, String), Registered> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let get = || db("decoding a recorded command type");
        let registered = Registered::new(
            row.try_get("domain").map_err(get())?,
            row.try_get("command_type").map_err(get())?,
            version(row.try_get("version").map_err(get())?),
            row.try_get("inserted").map_err(get())?,
            row.try_get("served_at").map_err(get())?,
        );
        found.insert((registered.domain.clone(), registered.command_type.clone()), registered);
    }
    types
        .iter()
        .map(|t| {
            found
                .get(&(t.domain.clone(), t.command_type.clone()))
                .cloned()
                .ok_or_else(|| Error::backend("recording command types", "a type was not recorded"))
        })
        .collect()
}

const REGISTER: &str = "WITH input AS (
    SELECT e.item ->> 'domain' AS domain, e.item ->> 'command_type' AS command_type,
           e.item - 'domain' - 'command_type' AS def
    FROM jsonb_array_elements($1::jsonb) AS e(item)
), recorded AS (
    INSERT INTO {schema}.command_types AS c
        (domain, command_type, version, fingerprint, payload_schema, reply_schema,
         max_attempts, backoff_ms, timeout_ms, priority, last_served_at)
    SELECT i.domain, i.command_type,
           1 + coalesce((SELECT max(v.version) FROM {schema}.command_types v
                         WHERE v.domain = i.domain AND v.command_type = i.command_type), 0),
           md5(i.def::text), i.def -> 'payload_schema', i.def -> 'reply_schema',
           (i.def ->> 'max_attempts')::integer,
           ARRAY(SELECT b::bigint FROM jsonb_array_elements_text(i.def -> 'backoff_ms') AS b),
           (i.def ->> 'timeout_ms')::bigint, (i.def ->> 'priority')::smallint,
           CASE WHEN $2 THEN now() END
    FROM input i
    ON CONFLICT (domain, command_type, fingerprint)
        DO UPDATE SET last_seen_at = now() {served_set}
    RETURNING c.domain, c.command_type, c.version, (c.xmax = 0) AS inserted
)
SELECT r.domain, r.command_type, r.version, r.inserted,
       greatest((SELECT max(s.last_served_at) FROM {schema}.command_types s
                 WHERE s.domain = r.domain),
                CASE WHEN $2 THEN now() END) AS served_at
FROM recorded r";

/// Every version of every type.
pub(crate) async fn list(transport: &PgTransport) -> Result<Catalog> {
    let sql = transport.schema_ref().render(
        "SELECT domain, command_type, version, payload_schema, reply_schema, max_attempts,
                backoff_ms, timeout_ms, priority, first_seen_at, last_seen_at, last_served_at,
                coalesce(last_served_at > now() - make_interval(secs => $1), false) AS live
         FROM {schema}.command_types",
    );
    let pool = transport.pool();
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(LIVE_WITHIN.as_secs_f64())
        .fetch_all(pool)
        .await
        .explained(pool, "reading the command-type catalog")
        .await?;
    Ok(Catalog::new(rows.iter().map(entry).collect::<Result<_>>()?))
}

fn entry(row: &PgRow) -> Result<CatalogEntry> {
    let get = || db("decoding a command type");
    let millis = |n: i64| u64::try_from(n).unwrap_or(0);
    let backoff: Vec<i64> = row.try_get("backoff_ms").map_err(get())?;
    let timeout: Option<i64> = row.try_get("timeout_ms").map_err(get())?;
    let max_attempts: i32 = row.try_get("max_attempts").map_err(get())?;
    let definition = CommandType::new(
        row.try_get("domain").map_err(get())?,
        row.try_get("command_type").map_err(get())?,
        row.try_get("payload_schema").map_err(get())?,
        row.try_get("reply_schema").map_err(get())?,
    )
    .with_policy(
        u32::try_from(max_attempts).unwrap_or(1),
        backoff.into_iter().map(millis).collect(),
        timeout.map(millis),
        row.try_get("priority").map_err(get())?,
    );
    Ok(CatalogEntry::new(
        definition,
        version(row.try_get("version").map_err(get())?),
        (row.try_get("first_seen_at").map_err(get())?, row.try_get("last_seen_at").map_err(get())?),
        row.try_get("last_served_at").map_err(get())?,
        row.try_get("live").map_err(get())?,
    ))
}

fn version(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}
