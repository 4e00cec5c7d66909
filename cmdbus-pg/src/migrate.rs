//! Schema migrations, applied by the library under an advisory lock so that
//! several processes starting at once apply each migration exactly once.

use cmdbus::{Error, SchemaError};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use crate::{pool_timeout::Explain, rows::db, schema::Schema};

/// The migrations this version knows, in order: (version, name, SQL template).
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "storage_v2", include_str!("../migrations/0002_storage_v2.sql")),
    (3, "flow_control", include_str!("../migrations/0003_flow_control.sql")),
    (4, "priorities", include_str!("../migrations/0004_priorities.sql")),
    (5, "limits", include_str!("../migrations/0005_limits.sql")),
    (6, "rate_limits", include_str!("../migrations/0006_rate_limits.sql")),
    (7, "catalog", include_str!("../migrations/0007_catalog.sql")),
    (8, "batches", include_str!("../migrations/0008_batches.sql")),
    (9, "processes", include_str!("../migrations/0009_processes.sql")),
    (10, "payload_edits", include_str!("../migrations/0010_payload_edits.sql")),
    (11, "command_keys", include_str!("../migrations/0011_command_keys.sql")),
    (12, "settled_indexes", include_str!("../migrations/0012_settled_indexes.sql")),
];

/// The newest schema version this library knows.
pub const SCHEMA_VERSION: i32 = 12;

/// What opening a bus does to its schema.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Apply pending migrations; create the schema first when allowed.
    Migrate {
        /// Whether a missing schema is created.
        create: bool,
    },
    /// Only check that the schema is at this library's version.
    Check,
}

/// The SQL of every migration for `schema`, for teams that run migrations
/// with their own tool: `(version, name, sql)`. Run them in order, once each,
/// after `CREATE SCHEMA`; each records itself in `schema_migrations`, so
/// processes built with [`skip_migrations`](crate::PgBusBuilder::skip_migrations)
/// accept the result.
///
/// ```
/// let migrations = cmdbus_pg::migrations_sql("cmdbus").unwrap();
/// assert!(migrations[0].2.contains("CREATE TABLE \"cmdbus\".commands"));
/// assert!(migrations[0].2.contains("INSERT INTO \"cmdbus\".schema_migrations"));
/// ```
pub fn migrations_sql(schema: &str) -> Result<Vec<(i32, &'static str, String)>, Error> {
    let schema = Schema::new(schema)?;
    Ok(MIGRATIONS
        .iter()
        .map(|(version, name, sql)| (*version, *name, schema.render(sql)))
        .collect())
}

/// Brings `schema` to [`SCHEMA_VERSION`] (or only checks it), and returns
/// the version it is at.
pub(crate) async fn open(pool: &PgPool, schema: &Schema, mode: Mode) -> Result<i32, Error> {
    match mode {
        Mode::Migrate { create } => migrate(pool, schema, create).await,
        Mode::Check => check(pool, schema).await,
    }
}

async fn migrate(pool: &PgPool, schema: &Schema, create: bool) -> Result<i32, Error> {
    // Serializes concurrent migrators of this schema until commit.
    let mut tx = schema.begin_locked(pool, "migrate").await?;
    match state(&mut tx, schema).await? {
        None if !create => {
            return Err(SchemaError::Missing { schema: schema.name().to_owned() }.into());
        }
        None => {
            sqlx::raw_sql(AssertSqlSafe(schema.render("CREATE SCHEMA {schema}")))
                .execute(&mut *tx)
                .await
                .map_err(db("creating the schema"))?;
        }
        Some(_) => {}
    }
    let current = state(&mut tx, schema).await?.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(too_new(schema, current));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        sqlx::raw_sql(AssertSqlSafe(schema.render(sql)))
            .execute(&mut *tx)
            .await
            .map_err(db("applying a migration"))?;
        tracing::info!(schema = schema.name(), version, name, "cmdbus: applied migration");
    }
    let version = state(&mut tx, schema).await?.unwrap_or(0);
    tx.commit().await.map_err(db("committing migrations"))?;
    Ok(version)
}

/// Checks, without changing anything, that `schema` is at the version this
/// library expects (for processes whose role may not run DDL).
async fn check(pool: &PgPool, schema: &Schema) -> Result<i32, Error> {
    let mut conn = pool.acquire().await.explained(pool, "checking the schema").await?;
    match state(&mut conn, schema).await? {
        None => Err(SchemaError::Missing { schema: schema.name().to_owned() }.into()),
        Some(found) if found == SCHEMA_VERSION => Ok(found),
        Some(found) if found > SCHEMA_VERSION => Err(too_new(schema, found)),
        Some(found) => Err(SchemaError::TooOld {
            schema: schema.name().to_owned(),
            found,
            expected: SCHEMA_VERSION,
        }
        .into()),
    }
}

fn too_new(schema: &Schema, found: i32) -> Error {
    SchemaError::TooNew { schema: schema.name().to_owned(), found, supported: SCHEMA_VERSION }
        .into()
}

/// `None` when the schema does not exist; else its version: the newest
/// migration recorded (0 when none is, or the bookkeeping table is absent).
async fn state(conn: &mut PgConnection, schema: &Schema) -> Result<Option<i32>, Error> {
    let (exists, has_table): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
                EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations')",
    )
    .bind(schema.name())
    .fetch_one(&mut *conn)
    .await
    .map_err(db("checking the schema"))?;
    if !exists {
        return Ok(None);
    }
    if !has_table {
        return Ok(Some(0));
    }
    let sql = schema.render("SELECT max(version) FROM {schema}.schema_migrations");
    let version: Option<i32> = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&mut *conn)
        .await
        .map_err(db("reading the schema version"))?;
    Ok(Some(version.unwrap_or(0)))
}
