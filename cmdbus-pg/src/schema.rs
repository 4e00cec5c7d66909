//! The schema cmdbus owns, and the SQL rendered for it once at start-up.

use std::sync::Arc;

use cmdbus::Error;
use sqlx::AssertSqlSafe;

/// Default schema name.
pub const DEFAULT_SCHEMA: &str = "cmdbus";

/// A validated schema name: it is spliced into SQL as a quoted identifier,
/// so it must be one we can trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Schema(String);

impl Schema {
    /// Accepts `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's limit).
    pub(crate) fn new(name: &str) -> Result<Self, Error> {
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > 63 {
            Some("it is longer than 63 bytes")
        } else if !name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_') {
            Some("it must start with a lowercase ASCII letter or `_`")
        } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            Some("only lowercase ASCII letters, digits and `_` are allowed")
        } else if name.starts_with("pg_") {
            Some("names starting with `pg_` are reserved by PostgreSQL")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                Err(Error::InvalidName { kind: "schema", value: name.to_owned(), reason })
            }
            None => Ok(Self(name.to_owned())),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.0
    }

    /// `sql` with every `{schema}` replaced by the quoted schema name.
    pub(crate) fn render(&self, sql: &str) -> String {
        sql.replace("{schema}", &format!("\"{}\"", self.0))
    }

    /// The LISTEN/NOTIFY channel for work in this schema.
    pub(crate) fn channel(&self) -> String {
        format!("cmdbus_{}", self.0)
    }

    /// The LISTEN/NOTIFY channel for new replies in this schema.
    pub(crate) fn replies_channel(&self) -> String {
        format!("cmdbus_{}_replies", self.0)
    }

    /// Begins a transaction that holds this schema's advisory lock for
    /// `purpose` (`migrate`, `catalog`) until it ends: whoever else takes
    /// the same lock waits, in any process.
    pub(crate) async fn begin_locked(
        &self,
        pool: &sqlx::PgPool,
        purpose: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, Error> {
        use crate::pool_timeout::Explain;
        let mut tx = pool.begin().await.explained(pool, "starting a locked transaction").await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("cmdbus-{purpose}:{}", self.0))
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::backend(format!("taking the {purpose} lock"), e))?;
        Ok(tx)
    }
}

/// Every statement of the hot path, rendered for one schema.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) command_send: Arc<str>,
    pub(crate) commands_send: Arc<str>,
    pub(crate) batch_get: Arc<str>,
    pub(crate) batches_list: Arc<str>,
    pub(crate) commands_lease: Lease,
    pub(crate) commands_lease_full: Lease,
    pub(crate) transitions_apply: Arc<str>,
    /// The same without batch bookkeeping, for transitions that cannot end
    /// a batch member: a feature nobody uses costs the others nothing.
    pub(crate) transitions_apply_plain: Arc<str>,
    pub(crate) leases_expired: Arc<str>,
    pub(crate) lease_extend: Arc<str>,
    pub(crate) leases_extend: Arc<str>,
    pub(crate) command_get: Arc<str>,
    pub(crate) audit_list: Arc<str>,
    pub(crate) reply_get: Arc<str>,
    pub(crate) replies_take: Arc<str>,
    pub(crate) queue_stats: Arc<str>,
}

const TRANSITIONS: &str = include_str!("sql/transitions_apply.sql");

/// `transitions_apply.sql` without its batch part (between the
/// `batches:begin` / `batches:end` lines, and the column marked `batches`).
fn without_batches(sql: &str) -> String {
    let (head, rest) = sql.split_once("-- batches:begin").unwrap_or((sql, ""));
    let tail = rest.split_once("-- batches:end").map_or("", |(_, tail)| tail);
    let tail = tail.split_once("/* batches */").map_or_else(
        || tail.to_owned(),
        |(before, after)| {
            let after = after.split_once('\n').map_or("", |(_, next)| next);
            format!("{}\n{after}", before.trim_end())
        },
    );
    format!("{head}{tail}")
}

/// The columns a batch is read with; `batch_get` and `batches_list` say which.
const BATCHES: &str = include_str!("sql/batch_get.sql");

impl Statements {
    pub(crate) fn new(schema: &Schema) -> Self {
        let r = |sql: &str| Arc::from(schema.render(sql));
        Self {
            command_send: r(include_str!("sql/command_send.sql")),
            commands_send: r(include_str!("sql/commands_send.sql")),
            batch_get: r(&format!("{BATCHES} WHERE b.batch_id = $1")),
            batches_list: r(&format!(
                "{BATCHES} WHERE ($1::bool IS FALSE OR b.finished_at IS NULL)
                   AND ($2::timestamptz IS NULL OR (b.created_at, b.batch_id) < ($2, $3::uuid))
                 ORDER BY b.created_at DESC, b.batch_id DESC LIMIT $4"
            )),
            commands_lease: Lease::new(
                schema,
                &lease(COMMON_LEASE_SEVERAL_DOMAINS, ""),
                &lease(COMMON_LEASE, ""),
            )
            .with_fixed_limits(),
            commands_lease_full: {
                let full = lease(
                    include_str!("sql/commands_lease_full.sql"),
                    include_str!("sql/commands_lease_counted.sql"),
                );
                Lease::new(schema, &full, &full)
            },
            transitions_apply: r(TRANSITIONS),
            transitions_apply_plain: r(&without_batches(TRANSITIONS)),
            leases_expired: r(include_str!("sql/leases_expired.sql")),
            lease_extend: r(include_str!("sql/lease_extend.sql")),
            leases_extend: r(include_str!("sql/leases_extend.sql")),
            command_get: r(include_str!("sql/command_get.sql")),
            audit_list: r(include_str!("sql/audit_list.sql")),
            reply_get: r(include_str!("sql/reply_get.sql")),
            replies_take: r(include_str!("sql/replies_take.sql")),
            queue_stats: r(include_str!("sql/queue_stats.sql")),
        }
    }
}

/// The common lease's `due`, for workers of one domain and of several,
/// after the head both share.
const COMMON_LEASE: &str =
    concat!(include_str!("sql/commands_lease_head.sql"), include_str!("sql/commands_lease.sql"));
const COMMON_LEASE_SEVERAL_DOMAINS: &str = concat!(
    include_str!("sql/commands_lease_head.sql"),
    include_str!("sql/commands_lease_domains.sql")
);

/// A lease statement: its own head (the CTEs that choose `due`), the tail
/// both share, and what the full one adds to the tail.
fn lease(head: &str, tail_addition: &str) -> String {
    let tail = include_str!("sql/commands_lease_tail.sql").replace("{counted}", tail_addition);
    format!("{head}{tail}")
}

/// A lease statement, for workers of several domains and of one.
#[derive(Debug)]
pub(crate) struct Lease {
    domains: Arc<str>,
    one_domain: Arc<str>,
    /// The one-domain statement with its limit written in, for limits 2^i
    /// (see [`Lease::with_fixed_limits`]); empty when there is none.
    one_domain_fixed: Vec<Arc<str>>,
}

/// The per-domain walk's limit in commands_lease.sql.
const WALK_LIMIT: &str = "        LIMIT $2\n        FOR UPDATE SKIP LOCKED";

/// Limits 1, 2, 4, … up to 2^(this - 1) get a statement of their own (the
/// worker's default batch, 256, among them).
const FIXED_LIMITS: u32 = 11;

impl Lease {
    /// `several` serves workers of several domains; the one-domain form is
    /// `one` with its domain list as one row.
    fn new(schema: &Schema, several: &str, one: &str) -> Self {
        Self {
            domains: Arc::from(schema.render(several)),
            one_domain: Arc::from(schema.render(&one_domain(one))),
            one_domain_fixed: Vec::new(),
        }
    }

    /// Adds one-domain statements whose per-domain walk has its limit
    /// written in. PostgreSQL guesses that `LIMIT $2` keeps a tenth of the
    /// due rows, so once `commands` has statistics the reusable plan of a
    /// backlog looks ~80 times dearer than one planned for the actual limit,
    /// and every lease was planned anew (0.2-0.5 ms; 7 custom plans of 7 on
    /// an analyzed 50k-row table). With the limit written in, the plan is
    /// kept. The outer `LIMIT $2` stays, so the statement takes the same
    /// parameters. Other limits use the statement with `$2`.
    fn with_fixed_limits(mut self) -> Self {
        self.one_domain_fixed = (0..FIXED_LIMITS)
            .map(|i| {
                let walk = WALK_LIMIT.replace("$2", &(1u32 << i).to_string());
                Arc::from(self.one_domain.replace(WALK_LIMIT, &walk))
            })
            .collect();
        self
    }

    /// The statement for a worker of `domains` domains leasing up to `limit`.
    pub(crate) fn for_lease(&self, domains: usize, limit: usize) -> &Arc<str> {
        if domains != 1 {
            return &self.domains;
        }
        let fixed = self.one_domain_fixed.get(limit.trailing_zeros() as usize);
        fixed.filter(|_| limit.is_power_of_two()).unwrap_or(&self.one_domain)
    }
}

/// A lease statement for one domain: the domain list becomes one row.
/// PostgreSQL guesses that `unnest` of an array parameter yields 10 rows,
/// so the reusable (generic) plan of the lease looked ten times dearer than
/// one planned for the actual array, and every lease was planned anew
/// (~0.8 ms of planning to save nothing). With one row the generic plan
/// costs what the custom one does, and PostgreSQL keeps it.
fn one_domain(sql: &str) -> String {
    sql.replace("unnest($1::text[]) AS d(domain)", "(VALUES (($1::text[])[1])) AS d(domain)")
}

/// A rendered statement, vouched for: its only dynamic part is the validated,
/// quoted schema name; every value is a bind parameter.
pub(crate) fn sql(statement: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(Arc::clone(statement))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plain_transition_statement_has_no_batch_part() {
        let plain = without_batches(TRANSITIONS);
        for batch_only in ["{schema}.batches", "$20::text", "fired AS", "AS completions"] {
            assert!(TRANSITIONS.contains(batch_only), "{batch_only}");
            assert!(!plain.contains(batch_only), "{batch_only} in\n{plain}");
        }
        assert!(plain.contains("AS applied\nFROM updated u"), "{plain}");
        assert!(plain.contains("replied AS ("), "{plain}");
    }

    #[test]
    fn a_one_domain_lease_has_no_array_to_guess_the_size_of() {
        let schema = Schema::new("cmdbus").unwrap();
        for head in [COMMON_LEASE, include_str!("sql/commands_lease_full.sql")] {
            let statement = Lease::new(&schema, &lease(head, ""), &lease(head, ""));
            let (many, one) = (statement.for_lease(2, 3), statement.for_lease(1, 3));
            assert!(many.matches("unnest($1::text[]) AS d(domain)").count() >= 2, "due and next");
            assert!(!one.contains("unnest($1::text[]) AS d(domain)"), "{one}");
            assert!(one.matches("(VALUES (($1::text[])[1])) AS d(domain)").count() >= 2);
        }
    }

    #[test]
    fn a_one_domain_lease_of_a_power_of_two_has_its_walk_limit_written_in() {
        let schema = Schema::new("cmdbus").unwrap();
        let common = lease(COMMON_LEASE, "");
        assert_eq!(common.matches(WALK_LIMIT).count(), 1, "{common}");
        let statement = Lease::new(&schema, &common, &common).with_fixed_limits();
        for limit in [1, 2, 64, 256, 1024] {
            let fixed = statement.for_lease(1, limit);
            let walk = format!("        LIMIT {limit}\n        FOR UPDATE SKIP LOCKED");
            assert!(fixed.contains(&walk), "{limit}: {fixed}");
            assert_eq!(fixed.matches("LIMIT $2").count(), 1, "the outer limit stays: {fixed}");
        }
        for (domains, limit) in [(1, 3), (1, 100), (1, 2048), (2, 64)] {
            let general = statement.for_lease(domains, limit);
            assert!(general.contains(WALK_LIMIT) || domains > 1, "{domains} {limit}");
            assert!(!general.contains("        LIMIT 64\n"), "{domains} {limit}");
        }
        let plain = Lease::new(&schema, &common, &common);
        assert_eq!(plain.for_lease(1, 64), &plain.one_domain, "no fixed forms unless asked");
    }

    #[test]
    fn only_leases_commit_without_waiting_for_the_wal_flush() {
        let statements = Statements::new(&Schema::new("cmdbus").unwrap());
        let unflushed = "set_config('synchronous_commit', 'off', true)";
        for lease in [&statements.commands_lease, &statements.commands_lease_full] {
            for (domains, limit) in [(1, 64), (1, 3), (2, 64)] {
                let statement = lease.for_lease(domains, limit);
                assert_eq!(statement.matches(unflushed).count(), 1, "{statement}");
            }
        }
        // What a crash must not lose: sends, outcomes, heartbeats.
        for durable in [
            &statements.command_send,
            &statements.commands_send,
            &statements.transitions_apply,
            &statements.transitions_apply_plain,
            &statements.lease_extend,
            &statements.leases_extend,
        ] {
            assert!(!durable.contains("synchronous_commit"), "{durable}");
        }
    }

    #[test]
    fn schema_names_are_validated() {
        for ok in ["cmdbus", "_private", "tenant_42"] {
            assert_eq!(Schema::new(ok).unwrap().name(), ok);
        }
        for bad in ["", "Cmdbus", "1x", "a-b", "x\"; drop table y; --", "pg_temp", &"a".repeat(64)]
        {
            assert!(Schema::new(bad).is_err(), "{bad:?}");
        }
        let schema = Schema::new("app").unwrap();
        assert_eq!(
            schema.render("SELECT * FROM {schema}.commands"),
            "SELECT * FROM \"app\".commands"
        );
        assert_eq!(schema.channel(), "cmdbus_app");
    }
}
