//! [`PgBus`]: a [`Bus`] on PostgreSQL, plus what only Postgres can do.

use std::{ops::Deref, time::Duration};

use cmdbus::{Bus, Command, CommandRecord, Page, Result, SendOptions, Sent, TsqFilter};
use sqlx::{PgConnection, PgPool};

use crate::{
    CommandQuery, StatusCount,
    migrate::Mode,
    pool_timeout::Explain,
    schema::{DEFAULT_SCHEMA, Schema, sql},
    transport::PgTransport,
};

/// A command bus on PostgreSQL. Dereferences to [`Bus`] for `send`,
/// `send_with`, `send_batch`, `wait_reply`, `worker` and the rest.
///
/// ```no_run
/// # async fn run() -> cmdbus::Result<()> {
/// let bus = cmdbus_pg::PgBus::connect("postgres://postgres@127.0.0.1/postgres").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgBus {
    bus: Bus<PgTransport>,
}

impl PgBus {
    /// Connects to `url`, applies migrations in schema `cmdbus`.
    ///
    /// The pool is [`pool_options`](crate::pool_options). Size it yourself
    /// with [`builder`](Self::builder) when workers and senders
    /// share a process: a worker uses a few connections at once for its
    /// leases, completions and maintenance, plus one per running handler
    /// that opened a [transaction](crate::PgHandlerContext::transaction)
    /// (its LISTEN connection is its own, outside the pool); a sender holds
    /// one for each send's round trip.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_schema(url, DEFAULT_SCHEMA).await
    }

    /// Connects to `url`, applies migrations in `schema`.
    pub async fn connect_schema(url: &str, schema: &str) -> Result<Self> {
        let pool = crate::pool_options()
            .connect(url)
            .await
            .map_err(|e| cmdbus::Error::backend("connecting to PostgreSQL", e))?;
        Self::builder(pool).schema(schema).build().await
    }

    /// Builds a bus over the caller's pool.
    pub fn builder(pool: PgPool) -> PgBusBuilder {
        PgBusBuilder {
            pool,
            schema: DEFAULT_SCHEMA.to_owned(),
            max_payload_bytes: None,
            migrate: true,
            create_schema: true,
        }
    }

    /// Sends inside the caller's transaction: nothing is visible, and no
    /// worker woken, unless the caller commits.
    ///
    /// ```no_run
    /// # #[cmdbus::command(domain = "payments")] struct DebitAccount {}
    /// # async fn run(bus: cmdbus_pg::PgBus) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut tx = bus.pool().begin().await?;
    /// // ... the caller's own writes ...
    /// bus.send_in(&mut tx, DebitAccount {}).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_in<C: Command>(
        &self,
        conn: &mut PgConnection,
        command: C,
    ) -> Result<Sent<C, PgTransport>> {
        self.send_in_with(conn, command, SendOptions::new()).await
    }

    /// [`send_in`](Self::send_in) with options.
    pub async fn send_in_with<C: Command>(
        &self,
        conn: &mut PgConnection,
        command: C,
        options: SendOptions,
    ) -> Result<Sent<C, PgTransport>> {
        let prepared = self.bus.prepare(&command, options)?;
        let mut outcomes = self.bus.transport().send_in(conn, vec![prepared]).await?;
        let outcome =
            outcomes.pop().ok_or_else(|| cmdbus::Error::backend("send", "no outcome returned"))?;
        Ok(Sent::new(self.bus.clone(), outcome))
    }

    /// PostgreSQL's plan for listing the troubleshooting-queue items
    /// `filter` selects (`EXPLAIN`), to check it uses an index.
    pub async fn explain_tsq(&self, filter: &TsqFilter) -> Result<String> {
        filter.validate()?;
        let transport = self.bus.transport();
        crate::troubleshooting::selection(filter)
            .explain(transport.pool(), transport.schema_ref(), 50)
            .await
    }

    /// Commands matching `query`, newest first, one page.
    pub async fn query(&self, query: &CommandQuery) -> Result<Page<CommandRecord>> {
        let transport = self.bus.transport();
        query.run(transport.pool(), transport.schema_ref()).await
    }

    /// PostgreSQL's plan for `query` (`EXPLAIN`), to check it uses an index.
    pub async fn explain(&self, query: &CommandQuery) -> Result<String> {
        let transport = self.bus.transport();
        query.explain(transport.pool(), transport.schema_ref()).await
    }

    /// PostgreSQL's plan for a page of [`processes`](cmdbus::Bus::processes)
    /// listed with `filter` (`EXPLAIN`), to check it uses an index.
    pub async fn explain_processes(
        &self,
        filter: &cmdbus::process::ProcessFilter,
    ) -> Result<String> {
        crate::process::explain(self.bus.transport(), filter).await
    }

    /// Commands per domain, type and status (optionally of one domain).
    pub async fn status_counts(&self, domain: Option<&str>) -> Result<Vec<StatusCount>> {
        let transport = self.bus.transport();
        crate::query::status_counts(transport.pool(), transport.schema_ref(), domain).await
    }

    /// The reply stored for a command, if any, without waiting (consoles;
    /// callers waiting for one use [`wait_reply`](Bus::wait_reply)).
    pub async fn reply(
        &self,
        domain: &str,
        command_id: uuid::Uuid,
    ) -> Result<Option<cmdbus::Reply>> {
        self.bus.transport().reply_get(domain, command_id).await
    }

    /// Queue health per domain and type: due, scheduled, running and
    /// failed commands now, and those that ended within `window` (an hour
    /// on the operator console). Reads only live commands and the window's
    /// history (indexed), whatever the size of the rest.
    pub async fn overview(&self, window: Duration) -> Result<Vec<crate::TypeHealth>> {
        crate::overview::overview(self.bus.transport(), window).await
    }

    /// PostgreSQL's plan for [`overview`](Self::overview) (`EXPLAIN`), to
    /// check it reads live commands through their indexes.
    pub async fn explain_overview(&self, window: Duration) -> Result<String> {
        crate::overview::explain(self.bus.transport(), window).await
    }

    /// Deletes finished commands (COMPLETED, FAILED, CANCELED) last changed
    /// before `before`, with their replies and audit rows — the explicit
    /// retention action; the library never deletes history by itself. Needs
    /// the schema owner's role. With `dry_run` it only counts.
    pub async fn prune_finished(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        operator: &cmdbus::Operator,
        dry_run: bool,
    ) -> Result<cmdbus::BulkOutcome> {
        crate::retention::prune(self.bus.transport(), before, operator, dry_run).await
    }

    /// Tracked batches, newest first (only those not ended yet with
    /// `open_only`), `limit` per page (1–1000) from `after`.
    pub async fn batches(
        &self,
        open_only: bool,
        limit: usize,
        after: Option<cmdbus::Cursor>,
    ) -> Result<Page<cmdbus::BatchStatus>> {
        let limit = limit.clamp(1, cmdbus::MAX_PAGE);
        let transport = self.bus.transport();
        let pool = transport.pool();
        let rows = sqlx::query(sql(&transport.statements().batches_list))
            .bind(open_only)
            .bind(after.map(|c| c.at()))
            .bind(after.map(|c| c.command_id()))
            .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .explained(pool, "listing batches")
            .await?;
        let items = rows.iter().map(crate::rows::batch_status).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, limit, |b| (b.created_at, b.batch_id)))
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        self.bus.transport().pool()
    }

    /// The generic bus.
    pub fn bus(&self) -> &Bus<PgTransport> {
        &self.bus
    }
}

impl Deref for PgBus {
    type Target = Bus<PgTransport>;

    fn deref(&self) -> &Self::Target {
        &self.bus
    }
}

/// Configures a [`PgBus`].
#[derive(Debug)]
#[must_use]
pub struct PgBusBuilder {
    pool: PgPool,
    schema: String,
    max_payload_bytes: Option<usize>,
    migrate: bool,
    create_schema: bool,
}

impl PgBusBuilder {
    /// The schema holding cmdbus's tables (default `cmdbus`): lowercase ASCII
    /// letters, digits and `_`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The payload size limit (default [`cmdbus::DEFAULT_MAX_PAYLOAD_BYTES`]).
    pub fn max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = Some(limit);
        self
    }

    /// Only checks that the schema is at this library's version instead of
    /// migrating it: for roles without DDL rights, with migrations run by
    /// `cmdbus migrate` or the team's own tool ([`migrations_sql`](crate::migrations_sql)).
    pub fn skip_migrations(mut self) -> Self {
        self.migrate = false;
        self
    }

    /// Whether migrating may create the schema when it does not exist
    /// (default: yes). Off, a missing schema is
    /// [`SchemaError::Missing`](cmdbus::SchemaError::Missing), so a mistyped
    /// name never becomes a new, empty schema (`cmdbus migrate` without
    /// `--create`).
    pub fn create_schema(mut self, create: bool) -> Self {
        self.create_schema = create;
        self
    }

    /// Validates the schema name, applies migrations, and returns the bus.
    pub async fn build(self) -> Result<PgBus> {
        let schema = Schema::new(&self.schema)?;
        let mode =
            if self.migrate { Mode::Migrate { create: self.create_schema } } else { Mode::Check };
        let transport = PgTransport::open(self.pool, schema, mode).await?;
        let mut bus = Bus::new(transport);
        if let Some(limit) = self.max_payload_bytes {
            bus = bus.with_max_payload_bytes(limit);
        }
        Ok(PgBus { bus })
    }
}
