//! What each subcommand does.

use std::{io::Write, time::Duration};

use cmdbus::{CommandKey, CommandRecord, CommandStatus, FlowTarget, Operator, TsqFilter};
use cmdbus_pg::{CommandQuery, PgBus};
use sqlx::{
    ConnectOptions,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{
    args::{Cli, Command, FlowArgs, QueryArgs, Target, Tsq, TsqFilterArgs},
    output,
};

/// Why the CLI failed, and with which exit code.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The bus refused or failed.
    #[error(transparent)]
    Bus(#[from] cmdbus::Error),
    /// Writing the output failed (e.g. a closed pipe).
    #[error("cannot write the output")]
    Output(#[from] std::io::Error),
    /// An argument that parsed but makes no sense.
    #[error("{0}")]
    Usage(String),
    /// Nothing matches what was asked for.
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    /// Output to a reader that went away (`cmdbus … | head`): not a failure.
    pub(crate) fn is_closed_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Bus(cmdbus::Error::Backend { .. }) => 4,
            Self::Bus(cmdbus::Error::Schema(_)) => 5,
            Self::Bus(_) | Self::Refused(_) => 3,
            Self::Output(_) => 1,
        }
    }
}

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

pub(crate) async fn run(cli: Cli, connect_timeout: Duration) -> Result<()> {
    if let Command::HashPassword = cli.command {
        return hash_password(&mut std::io::stdin().lock(), &mut std::io::stdout().lock());
    }
    let pool = connect(&cli.database_url, connect_timeout).await?;
    let builder = PgBus::builder(pool).schema(&cli.schema);
    let bus = match cli.command {
        Command::Migrate { create } => builder.create_schema(create).build().await?,
        _ => builder.skip_migrations().build().await?,
    };
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Migrate { .. } => {
            let version = bus.transport().schema_version();
            if cli.json {
                output::json(
                    &mut out,
                    &serde_json::json!({ "schema": cli.schema, "version": version }),
                )?;
            } else {
                writeln!(out, "schema {:?} is at version {version}", cli.schema)?;
            }
        }
        Command::Tsq(tsq) => run_tsq(&cli, &bus, tsq, &mut out).await?,
        Command::Pause { target, reason } => {
            let flow = flow_target(target)?;
            if target.dry_run {
                return flow_preview(&cli, &bus, &mut out, "pause", &flow).await;
            }
            let paused = bus.pause(&flow, &operator(&cli)?, reason).await?;
            let what = if paused { "paused" } else { "already paused" };
            flow_done(&cli, &mut out, what, &flow)?;
        }
        Command::Resume { target } => {
            let flow = flow_target(target)?;
            if target.dry_run {
                return flow_preview(&cli, &bus, &mut out, "resume", &flow).await;
            }
            let resumed = bus.resume(&flow, &operator(&cli)?).await?;
            let what = if resumed { "resumed" } else { "was not paused:" };
            flow_done(&cli, &mut out, what, &flow)?;
        }
        Command::Pauses => {
            let pauses = bus.pauses().await?;
            if cli.json {
                output::json(&mut out, &pauses)?;
            } else {
                let rows: Vec<Vec<String>> = pauses
                    .iter()
                    .map(|p| {
                        vec![
                            p.target.to_string(),
                            p.operator.clone(),
                            p.paused_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                            p.reason.clone(),
                        ]
                    })
                    .collect();
                output::table(&mut out, &["PAUSED", "BY", "SINCE (UTC)", "REASON"], &rows)?;
            }
        }
        Command::Limit { target, max_in_flight, per_second } => {
            let flow = flow_target(target)?;
            if target.dry_run {
                return flow_preview(&cli, &bus, &mut out, "limit", &flow).await;
            }
            let operator = operator(&cli)?;
            if let Some(max) = max_in_flight {
                bus.limit(&flow, *max, &operator).await?;
            }
            if let Some(rate) = per_second {
                bus.rate_limit(&flow, *rate, &operator).await?;
            }
            let set = bus.limits().await?.into_iter().find(|l| l.target == flow);
            let what = set.as_ref().map_or_else(|| "no limit".to_owned(), limit_text);
            flow_done(&cli, &mut out, &format!("{what}:"), &flow)?;
        }
        Command::Unlimit { target } => {
            let flow = flow_target(target)?;
            if target.dry_run {
                return flow_preview(&cli, &bus, &mut out, "unlimit", &flow).await;
            }
            let removed = bus.unlimit(&flow, &operator(&cli)?).await?;
            let what = if removed { "no limit any more:" } else { "had no limit:" };
            flow_done(&cli, &mut out, what, &flow)?;
        }
        Command::Limits => {
            let limits = bus.limits().await?;
            if cli.json {
                output::json(&mut out, &limits)?;
            } else {
                let rows: Vec<Vec<String>> = limits
                    .iter()
                    .map(|l| {
                        vec![
                            l.target.to_string(),
                            limit_text(l),
                            l.operator.clone(),
                            l.set_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        ]
                    })
                    .collect();
                output::table(&mut out, &["LIMITED", "LIMITS", "BY", "SINCE (UTC)"], &rows)?;
            }
        }
        Command::Cancel { id, domain, reason, dry_run } => {
            let key = CommandKey::maybe_in(domain.clone(), *id);
            if *dry_run {
                let found = find(&bus, *id).await?;
                let found: Vec<CommandRecord> = found
                    .into_iter()
                    .filter(|r| domain.as_deref().is_none_or(|d| r.domain == d))
                    .collect();
                return cancel_preview(&cli, &mut out, *id, &found);
            }
            bus.troubleshooting().cancel_pending(key, &operator(&cli)?, reason).await?;
            done(&cli, &mut out, "canceled", *id)?;
        }
        Command::Audit { id } => {
            let mut entries = Vec::new();
            for record in find(&bus, *id).await? {
                entries.extend(bus.audit_trail_in(&record.domain, *id).await?);
            }
            if cli.json {
                output::json(&mut out, &entries)?;
            } else {
                output::table(
                    &mut out,
                    &["AT (UTC)", "EVENT", "ATTEMPT", "DETAILS"],
                    &output::audit_rows(&entries),
                )?;
            }
        }
        Command::Query(args) => {
            let page = bus.query(&query(args)?).await?;
            print_page(&cli, &mut out, &page)?;
        }
        Command::Prune { before, dry_run } => {
            let operator = acting_operator(&cli, *dry_run)?;
            let outcome = bus.prune_finished(before.0, &operator, *dry_run).await?;
            if cli.json {
                output::json(&mut out, &bulk_json("prune", *dry_run, &outcome))?;
            } else if *dry_run {
                writeln!(
                    out,
                    "dry run: prune would delete {} finished command(s)",
                    outcome.matched
                )?;
            } else {
                writeln!(out, "pruned {} finished command(s)", outcome.acted)?;
            }
        }
        Command::Types { domain, command_type, history } => {
            let (domain, command_type) = (domain.as_deref(), command_type.as_deref());
            crate::types::list(&cli, &bus, &mut out, domain, command_type, *history).await?;
        }
        Command::Batch(crate::args::Batch::List { open, limit, after }) => {
            crate::batches::list(&cli, &bus, &mut out, *open, *limit, *after).await?;
        }
        Command::Batch(crate::args::Batch::Show { id }) => {
            crate::batches::show(&cli, &bus, &mut out, *id).await?;
        }
        Command::Process(command) => {
            crate::processes::run(&cli, &bus, &mut out, command).await?;
        }
        Command::Web { listen, users, insecure_cookies } => {
            let users =
                cmdbus_web::Users::load(users).map_err(|e| CliError::Usage(e.to_string()))?;
            let listener = tokio::net::TcpListener::bind(*listen)
                .await
                .map_err(|e| CliError::Refused(format!("cannot listen on {listen}: {e}")))?;
            let address = listener.local_addr()?;
            writeln!(out, "cmdbus console on http://{address} (Ctrl-C stops it)")?;
            out.flush()?;
            let console =
                cmdbus_web::Console::standalone(bus, users).secure_cookies(!*insecure_cookies);
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            cmdbus_web::serve(listener, console, stop)
                .await
                .map_err(|e| CliError::Refused(e.to_string()))?;
        }
        // Answered before connecting.
        Command::HashPassword => {}
        Command::Stats { domain } => {
            let counts = bus.status_counts(domain.as_deref()).await?;
            let unserved = crate::types::unserved(&bus, &counts).await?;
            if cli.json {
                output::json(
                    &mut out,
                    &serde_json::json!({ "counts": counts, "unserved": unserved }),
                )?;
            } else {
                let rows: Vec<Vec<String>> = counts
                    .iter()
                    .map(|c| {
                        vec![
                            c.domain.clone(),
                            c.command_type.clone(),
                            c.status.to_string(),
                            c.count.to_string(),
                        ]
                    })
                    .collect();
                output::table(&mut out, &["DOMAIN", "TYPE", "STATUS", "COUNT"], &rows)?;
                crate::types::print_unserved(&mut out, &unserved)?;
            }
        }
    }
    Ok(())
}

async fn run_tsq(cli: &Cli, bus: &PgBus, tsq: &Tsq, out: &mut impl Write) -> Result<()> {
    let api = bus.troubleshooting();
    match tsq {
        Tsq::List { filter, page } => {
            let result =
                api.list(&tsq_filter(filter)?, usize::from(page.limit), page.after).await?;
            print_page(cli, out, &result)?;
        }
        Tsq::Count { filter } => {
            let counts = api.counts(&tsq_filter(filter)?).await?;
            if cli.json {
                output::json(out, &counts)?;
            } else {
                let rows: Vec<Vec<String>> = counts
                    .iter()
                    .map(|c| {
                        let code = c.error_code.clone().unwrap_or_default();
                        vec![c.domain.clone(), c.command_type.clone(), code, c.count.to_string()]
                    })
                    .collect();
                output::table(out, &["DOMAIN", "TYPE", "ERROR CODE", "COUNT"], &rows)?;
            }
        }
        Tsq::Show { id, domain } => {
            let records: Vec<CommandRecord> = find(bus, *id)
                .await?
                .into_iter()
                .filter(|r| domain.as_deref().is_none_or(|d| r.domain == d))
                .collect();
            let catalog = bus.catalog().await?;
            if cli.json {
                // One object: several domains holding the id need --domain.
                let [record] = records.as_slice() else {
                    let domains = records.into_iter().map(|r| r.domain).collect();
                    return Err(
                        cmdbus::Error::AmbiguousCommandId { command_id: *id, domains }.into()
                    );
                };
                let mut json = serde_json::to_value(record)
                    .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
                json["catalog"] =
                    serde_json::to_value(catalog.latest(&record.domain, &record.command_type))
                        .map_err(|e| CliError::Output(std::io::Error::other(e)))?;
                output::json(out, &json)?;
            } else {
                if records.is_empty() {
                    let domain = domain.clone().unwrap_or_default();
                    return Err(cmdbus::Error::NotFound { domain, command_id: *id }.into());
                }
                for record in &records {
                    show(out, record, catalog.latest(&record.domain, &record.command_type))?;
                }
            }
        }
        Tsq::Retry { target } => {
            if target.dry_run {
                return preview(cli, bus, out, "retry", target, None).await;
            }
            let operator = operator(cli)?;
            match target.id {
                Some(id) => {
                    api.retry(key(target, id), &operator).await?;
                    done(cli, out, "retried", id)?;
                }
                None => {
                    let outcome = api
                        .retry_all(&tsq_filter(&target.filter)?, &operator, target.dry_run)
                        .await?;
                    bulk(cli, out, "retry", target, outcome)?;
                }
            }
        }
        Tsq::Cancel { target, reason } => {
            if target.dry_run {
                return preview(cli, bus, out, "cancel", target, None).await;
            }
            let operator = operator(cli)?;
            match target.id {
                Some(id) => {
                    api.cancel(key(target, id), &operator, reason).await?;
                    done(cli, out, "canceled", id)?;
                }
                None => {
                    let filter = tsq_filter(&target.filter)?;
                    let outcome =
                        api.cancel_all(&filter, &operator, reason, target.dry_run).await?;
                    bulk(cli, out, "cancel", target, outcome)?;
                }
            }
        }
        Tsq::Complete { target, result, unchecked } => {
            let result: serde_json::Value = serde_json::from_str(result)
                .map_err(|e| CliError::Usage(format!("--result is not valid JSON: {e}")))?;
            let api = if *unchecked { api.unchecked() } else { api };
            if target.dry_run {
                let check = (!*unchecked).then_some(&result);
                return preview(cli, bus, out, "complete", target, check).await;
            }
            let operator = operator(cli)?;
            match target.id {
                Some(id) => {
                    api.complete_json(key(target, id), &operator, &result).await?;
                    done(cli, out, "completed", id)?;
                }
                None => {
                    let filter = tsq_filter(&target.filter)?;
                    let outcome =
                        api.complete_all_json(&filter, &operator, &result, target.dry_run).await?;
                    bulk(cli, out, "complete", target, outcome)?;
                }
            }
        }
    }
    Ok(())
}

/// Who an action is done by; a dry run is done on no one's behalf and
/// records nothing, so it needs no identity.
pub(crate) fn acting_operator(cli: &Cli, dry_run: bool) -> Result<Operator> {
    if dry_run { Ok(Operator::new("dry-run")?) } else { operator(cli) }
}

/// The operator: --operator / $CMDBUS_OPERATOR, else the account this
/// process runs as (from the system; $USER and $LOGNAME only where the
/// system cannot say).
fn operator(cli: &Cli) -> Result<Operator> {
    let identity = cli
        .operator
        .clone()
        .or_else(os_account)
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .ok_or_else(|| {
            CliError::Usage("no operator identity: pass --operator or set CMDBUS_OPERATOR".into())
        })?;
    Ok(Operator::new(identity)?)
}

/// The name of the account this process runs as: the owner of
/// `/proc/self`, looked up in `/etc/passwd` (Linux).
fn os_account() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// The commands with this id (several domains may hold one), or a refusal.
async fn find(bus: &PgBus, id: uuid::Uuid) -> Result<Vec<CommandRecord>> {
    let records = bus.find(id).await?;
    if records.is_empty() {
        return Err(cmdbus::Error::UnknownCommandId { command_id: id }.into());
    }
    Ok(records)
}

/// One id, in the domain given with `--domain` if any.
fn key(target: &Target, id: uuid::Uuid) -> CommandKey {
    CommandKey::maybe_in(target.filter.domain.clone(), id)
}

/// A pool on `url`, after one direct connection that names the server and
/// the real cause when it fails (a pool would only say it timed out).
async fn connect(url: &str, timeout: Duration) -> Result<sqlx::PgPool> {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    if !matches!(scheme, "postgres" | "postgresql") {
        let shown = if scheme.is_empty() { "not a URL" } else { scheme };
        return Err(CliError::Usage(format!(
            "the database URL ({shown}) is not a PostgreSQL URL; cmdbus needs postgres://user@host:port/database"
        )));
    }
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| CliError::Usage(format!("the database URL cannot be read: {e}")))?;
    let server = format!(
        "connecting to PostgreSQL at {}:{}/{} as {}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username()),
        options.get_username()
    );
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(Ok(probe)) => drop(probe),
        Ok(Err(error)) => return Err(cmdbus::Error::backend(server, error).into()),
        Err(_) => {
            let why = format!("no answer within {}s", timeout.as_secs());
            return Err(cmdbus::Error::backend(server, why).into());
        }
    }
    Ok(PgPoolOptions::new().max_connections(4).acquire_timeout(timeout).connect_lazy_with(options))
}

fn tsq_filter(args: &TsqFilterArgs) -> Result<TsqFilter> {
    crate::when::check_range(args.since, args.until).map_err(CliError::Usage)?;
    let mut filter = TsqFilter::new();
    if let Some(domain) = &args.domain {
        filter = filter.domain(domain);
    }
    if let (Some(domain), Some(command_type)) = (&args.domain, &args.command_type) {
        filter = filter.command_type(domain, command_type);
    }
    if let Some(code) = &args.error_code {
        filter = filter.error_code(code);
    }
    if let Some(since) = args.since {
        filter = filter.since(since.0);
    }
    if let Some(until) = args.until {
        filter = filter.until(until.0);
    }
    if let Some(batch) = args.batch {
        filter = filter.batch(batch);
    }
    Ok(filter)
}

fn query(args: &QueryArgs) -> Result<CommandQuery> {
    let mut query = CommandQuery::new().limit(usize::from(args.page.limit));
    for status in &args.status {
        query = query.status(*status);
    }
    if let Some(domain) = &args.domain {
        query = query.domain(domain);
    }
    if let (Some(domain), Some(command_type)) = (&args.domain, &args.command_type) {
        query = query.command_type(domain, command_type);
    }
    if let Some(id) = args.correlation_id {
        query = query.correlation_id(id);
    }
    if args.scheduled {
        query = query.scheduled();
    }
    if args.since.is_some() || args.until.is_some() {
        crate::when::check_range(args.since, args.until).map_err(CliError::Usage)?;
        let from = args.since.map_or(chrono::DateTime::<chrono::Utc>::MIN_UTC, |w| w.0);
        let until =
            args.until.map_or_else(|| chrono::Utc::now() + chrono::Duration::days(1), |w| w.0);
        query = query.created_between(from, until);
    }
    if let Some(after) = args.page.after {
        query = query.after(after);
    }
    Ok(query)
}

fn print_page(cli: &Cli, out: &mut impl Write, page: &cmdbus::Page<CommandRecord>) -> Result<()> {
    if cli.json {
        let next = page.next.map(|c| c.to_string());
        output::json(out, &serde_json::json!({ "items": page.items, "next": next }))?;
    } else {
        output::table(out, &output::COMMAND_HEADERS, &output::command_rows(&page.items))?;
        if let Some(next) = page.next {
            writeln!(out, "more: --after {next}")?;
        }
    }
    Ok(())
}

fn show(
    out: &mut impl Write,
    record: &CommandRecord,
    catalog: Option<&cmdbus::CatalogEntry>,
) -> Result<()> {
    writeln!(out, "id:           {}", record.command_id)?;
    writeln!(out, "type:         {}/{}", record.domain, record.command_type)?;
    writeln!(out, "status:       {}", record.status)?;
    writeln!(out, "attempts:     {}/{}", record.attempts, record.max_attempts)?;
    writeln!(out, "correlation:  {}", record.correlation_id)?;
    writeln!(out, "reply to:     {}", record.reply_to)?;
    writeln!(out, "created:      {}", record.created_at)?;
    writeln!(out, "updated:      {}", record.updated_at)?;
    if let Some(error) = &record.last_error {
        writeln!(out, "last error:   {} ({:?}, {})", error.code, error.kind, error.error_type)?;
        writeln!(out, "              {}", error.message)?;
    }
    let payload: serde_json::Value = serde_json::from_str(record.payload.get()).unwrap_or_default();
    writeln!(out, "payload:")?;
    output::json(out, &payload)?;
    match catalog {
        Some(entry) => {
            writeln!(
                out,
                "reply schema (catalog version {}; what --result must match):",
                entry.version
            )?;
            output::json(out, &entry.definition.reply_schema)?;
            writeln!(out, "payload schema (catalog version {}):", entry.version)?;
            output::json(out, &entry.definition.payload_schema)?;
        }
        None => writeln!(
            out,
            "schemas:      not in the command-type catalog (no sender or worker of this type has recorded it)"
        )?,
    }
    Ok(())
}

fn done(cli: &Cli, out: &mut impl Write, what: &str, id: uuid::Uuid) -> Result<()> {
    if cli.json {
        output::json(out, &serde_json::json!({ "command_id": id, "result": what }))?;
    } else {
        writeln!(out, "{what} {id}")?;
    }
    Ok(())
}

/// A dry run: reads what the action would touch and changes nothing (it
/// needs no operator, since nothing is done on anyone's behalf). `result`:
/// a completion's result, checked as the real run would check it.
async fn preview(
    cli: &Cli,
    bus: &PgBus,
    out: &mut impl Write,
    action: &str,
    target: &Target,
    result: Option<&serde_json::Value>,
) -> Result<()> {
    let filter = tsq_filter(&target.filter)?;
    let records = match target.id {
        Some(id) => {
            let domain = target.filter.domain.as_deref();
            let found = find(bus, id).await?;
            found.into_iter().filter(|r| domain.is_none_or(|d| r.domain == d)).collect()
        }
        None => bus.troubleshooting().list(&filter, PREVIEW_LIMIT, None).await?.items,
    };
    let (eligible, refused): (Vec<_>, Vec<_>) =
        records.iter().partition(|r| r.status == CommandStatus::InTroubleshootingQueue);
    // The result the real run would refuse, if any: shown after the items.
    let mismatch = match result {
        Some(result) => {
            let types = eligible.iter().map(|r| (r.domain.as_str(), r.command_type.as_str()));
            bus.troubleshooting().check_result(types, result).await.err()
        }
        None => None,
    };
    // A filter may match more items than are listed: count them all.
    let matched = match target.id {
        Some(_) => eligible.len() as u64,
        None => {
            let counts = bus.troubleshooting().counts(&filter).await?;
            counts.iter().map(|c| c.count).sum::<i64>().try_into().unwrap_or(0)
        }
    };
    if cli.json {
        let ids: Vec<_> = eligible.iter().map(|r| r.command_id).collect();
        let refused: Vec<_> = refused
            .iter()
            .map(|r| serde_json::json!({ "command_id": r.command_id, "status": r.status }))
            .collect();
        let json = serde_json::json!({
            "action": action, "dry_run": true, "matched": matched, "acted": 0,
            "ids": ids, "refused": refused,
        });
        output::json(out, &json)?;
        return mismatch.map_or(Ok(()), |error| Err(error.into()));
    }
    let eligible: Vec<CommandRecord> = eligible.into_iter().cloned().collect();
    output::table(out, &output::COMMAND_HEADERS, &output::command_rows(&eligible))?;
    for record in refused {
        writeln!(
            out,
            "{} is {}, not in the troubleshooting queue: {action} would refuse it",
            record.command_id, record.status
        )?;
    }
    let shown = if matched > eligible.len() as u64 {
        format!(" (the first {} shown)", eligible.len())
    } else {
        String::new()
    };
    if let Some(error) = mismatch {
        writeln!(out, "dry run: {action} would refuse the result; nothing was changed")?;
        return Err(error.into());
    }
    writeln!(out, "dry run: {action} would act on {matched} item(s){shown}; nothing was changed")?;
    Ok(())
}

/// `4 at a time`, `20/s`, or both.
fn limit_text(limit: &cmdbus::Limit) -> String {
    let parts: Vec<String> = [
        limit.max_in_flight.map(|max| format!("{max} at a time")),
        limit.per_second.map(|rate| format!("{rate}/s")),
    ]
    .into_iter()
    .flatten()
    .collect();
    parts.join(", ")
}

fn flow_target(args: &FlowArgs) -> Result<FlowTarget> {
    Ok(match &args.command_type {
        Some(command_type) => FlowTarget::command_type(&args.domain, command_type)?,
        None => FlowTarget::domain(&args.domain)?,
    })
}

fn flow_done(cli: &Cli, out: &mut impl Write, what: &str, target: &FlowTarget) -> Result<()> {
    if cli.json {
        output::json(out, &serde_json::json!({ "result": what, "target": target }))?;
    } else {
        writeln!(out, "{what} {target}")?;
    }
    Ok(())
}

/// What a flow action's `--dry-run` shows: the target's pause and limit now
/// and how many PENDING and IN_PROGRESS commands it holds; nothing is changed.
async fn flow_preview(
    cli: &Cli,
    bus: &PgBus,
    out: &mut impl Write,
    action: &str,
    target: &FlowTarget,
) -> Result<()> {
    let paused = bus.pauses().await?.iter().any(|p| p.target == *target);
    let limit = bus.limits().await?.into_iter().find(|l| l.target == *target);
    let counts = bus.status_counts(Some(&target.domain)).await?;
    let count = |status| -> i64 {
        counts
            .iter()
            .filter(|c| c.status == status && target.covers(&c.domain, &c.command_type))
            .map(|c| c.count)
            .sum()
    };
    let (pending, in_flight) = (count(CommandStatus::Pending), count(CommandStatus::InProgress));
    if cli.json {
        let json = serde_json::json!({
            "action": action, "dry_run": true, "target": target, "paused": paused,
            "max_in_flight": limit.as_ref().and_then(|l| l.max_in_flight),
            "per_second": limit.as_ref().and_then(|l| l.per_second),
            "pending": pending, "in_flight": in_flight,
        });
        output::json(out, &json)?;
        return Ok(());
    }
    let pause = if paused { "paused" } else { "not paused" };
    let limited = limit
        .as_ref()
        .map_or_else(|| "no limit".to_owned(), |l| format!("a limit of {}", limit_text(l)));
    writeln!(
        out,
        "dry run: {target} is {pause}, with {limited}; {pending} pending, {in_flight} in flight"
    )?;
    let effect = match (action, paused) {
        ("pause", false) => format!("pause would hold its {pending} pending command(s)"),
        ("resume", true) => format!("resume would release its {pending} pending command(s)"),
        ("pause" | "resume", _) => format!("{action} would change nothing"),
        _ => format!("{action} would apply to those counts"),
    };
    writeln!(out, "{effect}; nothing was changed")?;
    Ok(())
}

/// What `cancel --dry-run` shows: the command, and whether it would be
/// canceled (only a PENDING one is).
fn cancel_preview(
    cli: &Cli,
    out: &mut impl Write,
    id: uuid::Uuid,
    found: &[CommandRecord],
) -> Result<()> {
    let would = |r: &CommandRecord| r.status == CommandStatus::Pending;
    if cli.json {
        let items: Vec<_> = found
            .iter()
            .map(|r| serde_json::json!({ "domain": r.domain, "status": r.status, "would_cancel": would(r) }))
            .collect();
        let json = serde_json::json!({ "action": "cancel", "dry_run": true, "command_id": id, "items": items });
        output::json(out, &json)?;
        return Ok(());
    }
    output::table(out, &output::COMMAND_HEADERS, &output::command_rows(found))?;
    for record in found {
        if would(record) {
            writeln!(
                out,
                "dry run: cancel would cancel {id} in {}; nothing was changed",
                record.domain
            )?;
        } else {
            writeln!(
                out,
                "dry run: {id} in {} is {}, not pending: cancel would refuse it; nothing was changed",
                record.domain, record.status
            )?;
        }
    }
    if found.is_empty() {
        return Err(cmdbus::Error::UnknownCommandId { command_id: id }.into());
    }
    Ok(())
}

/// The JSON every bulk action and `prune` prints.
fn bulk_json(action: &str, dry_run: bool, outcome: &cmdbus::BulkOutcome) -> serde_json::Value {
    serde_json::json!({
        "action": action, "dry_run": dry_run, "matched": outcome.matched,
        "acted": outcome.acted, "ids": outcome.ids,
    })
}

/// Items a bulk dry run lists.
const PREVIEW_LIMIT: usize = 1000;

fn bulk(
    cli: &Cli,
    out: &mut impl Write,
    action: &str,
    target: &Target,
    outcome: cmdbus::BulkOutcome,
) -> Result<()> {
    if cli.json {
        output::json(out, &bulk_json(action, target.dry_run, &outcome))?;
    } else if target.dry_run {
        writeln!(out, "dry run: {action} would act on {} item(s)", outcome.matched)?;
    } else {
        writeln!(
            out,
            "{action}: acted on {} of {} matching item(s)",
            outcome.acted, outcome.matched
        )?;
    }
    Ok(())
}

/// Reads one password line from `input`, prints its argon2 hash.
fn hash_password(input: &mut impl std::io::BufRead, out: &mut impl Write) -> Result<()> {
    let mut password = String::new();
    input.read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(CliError::Usage("give the password on standard input".into()));
    }
    let hash = cmdbus_web::hash_password(password).map_err(|e| CliError::Refused(e.to_string()))?;
    writeln!(out, "{hash}")?;
    Ok(())
}
