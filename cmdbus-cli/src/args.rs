//! Command-line arguments.

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::when::When;

/// Operate a cmdbus deployment: the troubleshooting queue, audit trails,
/// queries and migrations. Payloads are shown as JSON; no command types need
/// to be compiled in.
#[derive(Debug, Parser)]
#[command(name = "cmdbus", version, about)]
pub(crate) struct Cli {
    /// PostgreSQL URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub(crate) database_url: String,
    /// The schema holding cmdbus's tables.
    #[arg(
        long,
        env = "CMDBUS_SCHEMA",
        global = true,
        hide_env_values = true,
        default_value = cmdbus_pg::DEFAULT_SCHEMA
    )]
    pub(crate) schema: String,
    /// Print JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Who performs operator actions (default: $CMDBUS_OPERATOR, else the OS user).
    #[arg(long, env = "CMDBUS_OPERATOR", global = true, hide_env_values = true)]
    pub(crate) operator: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Apply the schema migrations (idempotent). Refuses a schema that does
    /// not exist unless --create is given, so a mistyped name never becomes a
    /// new, empty schema.
    Migrate {
        /// Create the schema if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// The troubleshooting queue.
    #[command(subcommand)]
    Tsq(Tsq),
    /// Cancel a command before it starts (PENDING: due, or scheduled for
    /// later); its sender gets a CANCELED reply. Items in the
    /// troubleshooting queue are canceled with `tsq cancel`.
    Cancel {
        /// The command id.
        id: Uuid,
        /// Its domain (needed when several domains hold the id).
        #[arg(long)]
        domain: Option<String>,
        /// Why (recorded in the audit trail and the reply).
        #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
        reason: String,
        /// Change nothing: show the command and whether it would be canceled.
        #[arg(long)]
        dry_run: bool,
    },
    /// Pause a domain or one command type: its commands stay PENDING and no
    /// worker takes them until `resume`. Running handlers finish.
    Pause {
        #[command(flatten)]
        target: FlowArgs,
        /// Why (recorded with the pause and in operator_actions).
        #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
        reason: String,
    },
    /// Resume a paused domain or command type; its workers wake at once.
    Resume {
        #[command(flatten)]
        target: FlowArgs,
    },
    /// The pauses in force.
    Pauses,
    /// Limit how many commands of a domain or type are leased at once, or
    /// per second, across every worker (e.g. for a fragile partner API).
    Limit {
        #[command(flatten)]
        target: FlowArgs,
        /// At most this many at a time (leased ahead included).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..), required_unless_present = "per_second")]
        max_in_flight: Option<u32>,
        /// At most this many per second on average (bursts of one second's worth).
        #[arg(long)]
        per_second: Option<f64>,
    },
    /// Remove a limit.
    Unlimit {
        #[command(flatten)]
        target: FlowArgs,
    },
    /// The limits in force.
    Limits,
    /// A command's audit trail, oldest first.
    Audit {
        /// The command id.
        id: Uuid,
    },
    /// Find commands by status, domain, type, correlation id and date.
    Query(QueryArgs),
    /// Delete finished commands (with their replies and audit rows) last
    /// changed before a time: the explicit retention action. Needs the
    /// schema owner's role.
    Prune {
        /// Finished before (a time as printed, a date, RFC 3339, or an age such as 30d).
        #[arg(long)]
        before: When,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// The command types senders and workers recorded: domain, type,
    /// whether a worker serves it, retry policy, pending and TSQ counts.
    /// With --type, the type in full (its JSON schemas).
    Types {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only this command type, shown in full (needs --domain).
        #[arg(long = "type", requires = "domain")]
        command_type: Option<String>,
        /// Every version, not only the latest.
        #[arg(long)]
        history: bool,
    },
    /// Tracked batches: members by status, whether they ended, their
    /// completion command.
    #[command(subcommand)]
    Batch(Batch),
    /// Process instances (sagas): list by status, show one, retry a stuck
    /// compensation, abandon one with a reason.
    #[command(subcommand)]
    Process(Process),
    /// Commands per domain, type and status, and domains with pending work
    /// that no live worker serves.
    Stats {
        /// Only this domain.
        #[arg(long)]
        domain: Option<String>,
    },
    /// Serves the operator web console until Ctrl-C, with its own login for
    /// the users in `--users` (it never runs without one). Behind a reverse
    /// proxy that terminates TLS; see docs/deployment.md.
    Web {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The users file: `<name> <viewer|operator> <argon2 hash>` per line
        /// (`cmdbus hash-password` makes the hashes).
        #[arg(long, env = "CMDBUS_WEB_USERS")]
        users: std::path::PathBuf,
        /// Send cookies over plain HTTP too (only on a trusted network;
        /// browsers treat http://localhost as secure anyway).
        #[arg(long)]
        insecure_cookies: bool,
    },
    /// Reads a password from standard input and prints its argon2 hash, for
    /// the console's users file. Needs no database.
    HashPassword,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Batch {
    /// Batches, newest first.
    List {
        /// Only batches with members not ended yet.
        #[arg(long)]
        open: bool,
        /// Rows per page (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor (printed at the end of a page).
        #[arg(long)]
        after: Option<cmdbus::Cursor>,
    },
    /// One batch in full.
    Show {
        /// The batch id.
        id: Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Process {
    /// Instances, newest first.
    List {
        /// Only this process type.
        #[arg(long = "type")]
        process_type: Option<String>,
        /// Only these statuses (running, waiting, compensating, completed,
        /// compensated, stuck, abandoned); repeatable.
        #[arg(long)]
        status: Vec<String>,
        /// Only the instance with this correlation id.
        #[arg(long)]
        correlation_id: Option<Uuid>,
        /// Rows per page (1-1000).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor (printed at the end of a page).
        #[arg(long)]
        after: Option<cmdbus::Cursor>,
    },
    /// One instance in full: status, state, what it waits for.
    Show {
        /// The process type.
        process_type: String,
        /// The process id.
        id: Uuid,
    },
    /// Send a STUCK process's failed compensation again (a new command)
    /// and resume compensating.
    Retry {
        /// The process type.
        process_type: String,
        /// The process id.
        id: Uuid,
        /// Only check that it would act.
        #[arg(long)]
        dry_run: bool,
    },
    /// End a process that has not ended; nothing reacts to its steps after.
    Abandon {
        /// The process type.
        process_type: String,
        /// The process id.
        id: Uuid,
        /// Why (recorded with your identity).
        #[arg(long)]
        reason: String,
        /// Only check that it would act.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum Tsq {
    /// Items in the troubleshooting queue, newest first.
    List {
        #[command(flatten)]
        filter: TsqFilterArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// How many items per domain, type and error code.
    Count {
        #[command(flatten)]
        filter: TsqFilterArgs,
    },
    /// One command in full: payload, last error, status.
    Show {
        /// The command id.
        id: Uuid,
        /// Its domain (needed with --json when several domains hold the id).
        #[arg(long)]
        domain: Option<String>,
    },
    /// Send items back to PENDING with their attempts reset.
    Retry {
        #[command(flatten)]
        target: Target,
    },
    /// Cancel items; each sender gets a CANCELED reply.
    Cancel {
        #[command(flatten)]
        target: Target,
        /// Why (recorded in the audit trail and the reply).
        #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
        reason: String,
    },
    /// Complete items with a result; each sender gets a SUCCESS reply. The
    /// result is checked against the reply schema the command-type catalog
    /// holds for each item's type first.
    Complete {
        #[command(flatten)]
        target: Target,
        /// The result, as JSON (the command type's reply; `cmdbus types
        /// --domain D --type T` shows its schema).
        #[arg(long)]
        result: String,
        /// Store the result without checking it (for a type the catalog
        /// does not know): you vouch that the sender can decode it.
        #[arg(long)]
        unchecked: bool,
    },
}

/// A domain, or one command type of it, to pause, resume or limit.
#[derive(Debug, Args)]
pub(crate) struct FlowArgs {
    /// The domain.
    pub(crate) domain: String,
    /// Only this command type of the domain.
    #[arg(long = "type")]
    pub(crate) command_type: Option<String>,
    /// Change nothing: show its state now and how many commands it holds.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// One id (with `--domain` when several domains hold it), or every item
/// matching a filter.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The command id (or use --all with filters).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub(crate) id: Option<Uuid>,
    /// Act on every item matching the filters.
    #[arg(long)]
    pub(crate) all: bool,
    /// Change nothing: show the items the action would touch, and which it
    /// would refuse.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) filter: TsqFilterArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TsqFilterArgs {
    /// Only this domain.
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Only this command type (needs --domain).
    #[arg(long = "type", requires = "domain")]
    pub(crate) command_type: Option<String>,
    /// Only items whose last error has this code.
    #[arg(long)]
    pub(crate) error_code: Option<String>,
    /// Entered the queue since (a time as printed, a date, RFC 3339, or an
    /// age such as 30m, 2h, 7d; UTC unless an offset is given).
    #[arg(long)]
    pub(crate) since: Option<When>,
    /// Entered the queue before (as --since).
    #[arg(long)]
    pub(crate) until: Option<When>,
    /// Only members of this tracked batch (those holding it open).
    #[arg(long)]
    pub(crate) batch: Option<Uuid>,
}

#[derive(Debug, Args)]
pub(crate) struct PageArgs {
    /// Rows per page (1–1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) limit: u16,
    /// Continue after this cursor (printed with the previous page).
    #[arg(long)]
    pub(crate) after: Option<cmdbus::Cursor>,
}

#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// Only these statuses (pending, in_progress, completed, failed, tsq, canceled).
    #[arg(long)]
    pub(crate) status: Vec<cmdbus::CommandStatus>,
    /// Only this domain.
    #[arg(long)]
    pub(crate) domain: Option<String>,
    /// Only this command type (needs --domain).
    #[arg(long = "type", requires = "domain")]
    pub(crate) command_type: Option<String>,
    /// Only this correlation id.
    #[arg(long)]
    pub(crate) correlation_id: Option<Uuid>,
    /// Only commands scheduled for later (PENDING, not due yet).
    #[arg(long)]
    pub(crate) scheduled: bool,
    /// Created since (a time as printed, a date, RFC 3339, or an age such
    /// as 30m, 2h, 7d; UTC unless an offset is given).
    #[arg(long)]
    pub(crate) since: Option<When>,
    /// Created before (as --since).
    #[arg(long)]
    pub(crate) until: Option<When>,
    #[command(flatten)]
    pub(crate) page: PageArgs,
}
