//! Schema migrations, applied by the library under an advisory lock so that
//! several processes starting at once apply each migration exactly once.

use cmdbus::Error;
use sqlx::{AssertSqlSafe, PgPool};

use crate::{pool_timeout::Explain, schema::Schema};

/// The migrations this version knows, in order: (version, name, SQL template).
const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "init", include_str!("../migrations/0001_init.sql"))];

/// The newest schema version this library knows.
pub const SCHEMA_VERSION: i32 = 1;

/// Why migrating failed beyond a plain database error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The schema was migrated by a newer cmdbus; this one must not touch it.
    #[error(
        "schema {schema:?} is at version {found}, newer than this cmdbus-pg supports ({supported}); upgrade cmdbus-pg"
    )]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The newest this library knows.
        supported: i32,
    },
    /// The schema is missing or older than this library needs, and this
    /// process was told not to migrate.
    #[error(
        "schema {schema:?} is at version {found}, this cmdbus-pg needs {expected}; run the migrations (`cmdbus migrate`)"
    )]
    SchemaTooOld {
        /// The schema.
        schema: String,
        /// Its version (0: not migrated).
        found: i32,
        /// The version needed.
        expected: i32,
    },
}

/// The SQL of every migration for `schema`, for teams that run migrations
/// with their own tool: `(version, name, sql)`. Run them in order, once each,
/// after `CREATE SCHEMA`.
///
/// ```
/// let migrations = cmdbus_pg::migrations_sql("cmdbus").unwrap();
/// assert!(migrations[0].2.contains("CREATE TABLE \"cmdbus\".commands"));
/// ```
pub fn migrations_sql(schema: &str) -> Result<Vec<(i32, &'static str, String)>, Error> {
    let schema = Schema::new(schema)?;
    Ok(MIGRATIONS
        .iter()
        .map(|(version, name, sql)| (*version, *name, schema.render(sql)))
        .collect())
}

pub(crate) async fn migrate(pool: &PgPool, schema: &Schema) -> Result<(), Error> {
    let db = |context: &'static str| move |e: sqlx::Error| Error::backend(context, e);
    let mut tx = pool.begin().await.explained(pool, "starting migration").await?;
    // Serializes concurrent migrators of this schema until commit.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("cmdbus-migrate:{}", schema.name()))
        .execute(&mut *tx)
        .await
        .map_err(db("taking the migration lock"))?;
    let setup = schema.render(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version integer PRIMARY KEY,
             name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    );
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *tx)
        .await
        .map_err(db("creating the schema"))?;
    let current = version(&mut *tx, schema).await?;
    if current > SCHEMA_VERSION {
        return Err(Error::backend(
            "checking the schema version",
            MigrateError::SchemaTooNew {
                schema: schema.name().to_owned(),
                found: current,
                supported: SCHEMA_VERSION,
            },
        ));
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        sqlx::raw_sql(AssertSqlSafe(schema.render(sql)))
            .execute(&mut *tx)
            .await
            .map_err(db("applying a migration"))?;
        sqlx::query(AssertSqlSafe(
            schema.render("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
        ))
        .bind(version)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db("recording a migration"))?;
        tracing::info!(schema = schema.name(), version, name, "cmdbus: applied migration");
    }
    tx.commit().await.map_err(db("committing migrations"))
}

/// Checks, without changing anything, that `schema` is at the version this
/// library expects (for processes whose role may not run DDL).
pub(crate) async fn check(pool: &PgPool, schema: &Schema) -> Result<(), Error> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations')",
    )
    .bind(schema.name())
    .fetch_one(pool)
    .await
    .explained(pool, "checking the schema")
    .await?;
    let found = if exists { version(pool, schema).await? } else { 0 };
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    let error = if found > SCHEMA_VERSION {
        MigrateError::SchemaTooNew {
            schema: schema.name().to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }
    } else {
        MigrateError::SchemaTooOld {
            schema: schema.name().to_owned(),
            found,
            expected: SCHEMA_VERSION,
        }
    };
    Err(Error::backend("checking the schema version", error))
}

/// The schema's version: the newest applied migration (0 for none).
async fn version<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Postgres>,
    schema: &Schema,
) -> Result<i32, Error> {
    let sql = schema.render("SELECT max(version) FROM {schema}.schema_migrations");
    let version: Option<i32> = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(executor)
        .await
        .map_err(|e| Error::backend("reading the schema version", e))?;
    Ok(version.unwrap_or(0))
}
