//! The worker runtime: lease in batches, run handlers concurrently, record
//! outcomes in batches, shut down gracefully. Generic over [`Transport`].

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{Notify, mpsc, watch},
    task::{AbortHandle, Id, JoinSet},
    time::{Instant, sleep, sleep_until},
};
use tracing::{Instrument, debug, field::Empty, info_span, warn};

use crate::{
    Classifier, CommandType, CommandsLease, HandlerContext, HandlerError, HandlerRegistration,
    LeaseRef, LeasedCommand, Outcome, OutcomeKind, Polled, RecordResult, Registry, Result,
    RetryPolicy, SERVED_EVERY, Transport, executor, telemetry,
};

/// The shortest heartbeat period, whatever the visibility timeout.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// One command in this many is leased oldest-due-first whatever its priority.
const OLDEST_FIRST_EVERY: usize = 8;

/// Outcomes recorded per transport call, at most.
const RECORD_BATCH: usize = 256;

/// Configures and starts a [`Worker`]. Get one from [`Bus::worker`](crate::Bus::worker).
///
/// Defaults: concurrency 16, lease batches of up to 256, up to 256 commands
/// leased ahead of free handler slots (as many as the handlers take up in
/// about 100 ms), visibility timeout 30 s, fallback poll every 1 s,
/// expired-lease rescue every 5 s, shutdown deadline 30 s, every
/// unclassified error transient, no handler timeout unless the command type
/// sets one, no schedules.
///
/// The worker keeps the leases of its running handlers alive by itself: every
/// third of the visibility timeout one statement extends them all, so a
/// handler may run longer than the visibility timeout without being run
/// twice. The visibility timeout is then how long a *crashed* worker's
/// commands wait before another worker takes them over.
#[must_use]
pub struct WorkerBuilder<T: Transport> {
    transport: T,
    registry: Option<Arc<Registry>>,
    domains: Vec<String>,
    concurrency: usize,
    batch_size: usize,
    prefetch: usize,
    visibility_timeout: Duration,
    poll_interval: Duration,
    rescue_interval: Duration,
    shutdown_timeout: Duration,
    classifier: Classifier,
    worker_id: String,
    lag_threshold: Duration,
    handler_timeout: Option<Duration>,
    /// The bus's payload limit, for commands handlers send.
    max_payload_bytes: usize,
    schedules: Vec<crate::Schedule>,
}

impl<T: Transport> WorkerBuilder<T> {
    pub(crate) fn new(transport: T) -> Self {
        Self {
            transport,
            registry: None,
            domains: Vec::new(),
            concurrency: 16,
            batch_size: 256,
            prefetch: 256,
            visibility_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            classifier: Classifier::new(),
            lag_threshold: Duration::from_secs(30),
            handler_timeout: None,
            max_payload_bytes: crate::DEFAULT_MAX_PAYLOAD_BYTES,
            schedules: Vec::new(),
            worker_id: format!(
                "{}-{}",
                std::process::id(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
        }
    }

    /// Commands handlers send ([`HandlerContext::send`]) obey the bus's payload limit.
    pub(crate) fn max_payload_bytes(mut self, limit: usize) -> Self {
        self.max_payload_bytes = limit;
        self
    }

    /// Serves `domain` (call again for several).
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domains.push(domain.into());
        self
    }

    /// Serves every domain that has a handler in this binary.
    pub fn all_domains(mut self) -> Self {
        self.domains.clear();
        self.domains.push("*".to_owned());
        self
    }

    /// Handlers running at once (at least 1).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Most commands leased in one round trip (at least 1).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// At most this many commands leased ahead of free handler slots (0:
    /// lease only for free slots). Leasing ahead lets one round trip fetch a
    /// whole batch while handlers run. The worker holds only as many as its
    /// handlers will take up within about 100 ms, judged by how long they
    /// have been running, so slow handlers do not hoard work other workers
    /// could run. The leases of waiting commands are kept alive by the
    /// heartbeat and given back at shutdown.
    pub fn prefetch(mut self, prefetch: usize) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// How long a lease lasts before another worker may take the command.
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// How often to look for work when no wake-up came (the fallback when
    /// notifications are lost, e.g. behind a transaction-mode pooler).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How often to return expired leases to the queue.
    pub fn rescue_interval(mut self, interval: Duration) -> Self {
        self.rescue_interval = interval;
        self
    }

    /// Stops a handler that runs longer than `timeout` when its command type
    /// sets no `timeout` of its own; the attempt counts as a transient
    /// failure (`handler_timeout`). A handler that blocks its thread without
    /// awaiting cannot be stopped.
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = Some(timeout);
        self
    }

    /// Sends a periodic command while this worker runs (declare the same
    /// schedule in every worker: each tick is sent once whichever runs).
    pub fn schedule(mut self, schedule: crate::Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// How long shutdown waits for running handlers before releasing them.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How unclassified handler errors are classified.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// Uses this registry instead of every `#[handler]` in the binary.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(Arc::new(registry));
        self
    }

    /// How long due work may wait before [`WorkerHealth::keeping_up`] turns
    /// false (default 30 s).
    pub fn lag_threshold(mut self, threshold: Duration) -> Self {
        self.lag_threshold = threshold;
        self
    }

    /// Names this worker (recorded with its leases).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = id.into();
        self
    }

    /// Checks the configuration and starts leasing.
    ///
    /// Fails if no domain was given, a domain has no handler, or two
    /// handlers serve one command type.
    pub async fn start(mut self) -> Result<Worker> {
        let registry = match self.registry.take() {
            Some(registry) => registry,
            None => Arc::new(Registry::from_inventory()?),
        };
        if self.domains.iter().any(|d| d == "*") {
            self.domains = registry.domains();
        }
        self.domains.sort();
        self.domains.dedup();
        registry.check_serves(&self.domains)?;
        let wakeups = self.transport.wakeups(&self.domains).await?;
        let served: Vec<CommandType> = registry
            .registrations()
            .filter(|r| self.domains.iter().any(|d| d == r.domain()))
            .map(HandlerRegistration::definition)
            .collect();
        record_served(&self.transport, &served).await;
        let (stop, stopped) = watch::channel(false);
        let id = self.worker_id.clone();
        let health = Arc::new(Mutex::new(WorkerHealth::starting()));
        let schedules = std::mem::take(&mut self.schedules)
            .into_iter()
            .map(|schedule| tokio::spawn(schedule.run(self.transport.clone(), stopped.clone())))
            .collect();
        let runtime = Runtime {
            config: self,
            registry,
            served,
            schedules,
            wakeups,
            stopped,
            health: Arc::clone(&health),
        };
        let task = tokio::spawn(runtime.run());
        Ok(Worker { id, stop, task, health })
    }
}

/// A running worker. [`shutdown`](Self::shutdown) stops it gracefully;
/// dropping it does the same in the background.
pub struct Worker {
    id: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<ShutdownReport>,
    health: Arc<Mutex<WorkerHealth>>,
}

impl Worker {
    /// How the worker is doing, for readiness and liveness probes.
    pub fn health(&self) -> WorkerHealth {
        self.health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops leasing, lets running handlers finish within the shutdown
    /// deadline, records their outcomes, and gives back the leases of any
    /// that did not finish, so nothing is lost.
    pub async fn shutdown(self) -> ShutdownReport {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// A worker's health.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WorkerHealth {
    /// The last lease round trip succeeded (the database is reachable).
    pub connected: bool,
    /// Lease attempts failed in a row.
    pub lease_errors: u32,
    /// Handlers running now.
    pub in_flight: usize,
    /// How long the oldest due command of the served domains has waited,
    /// as last sampled (every rescue interval).
    pub oldest_due_age: Option<Duration>,
    /// Connected, and the oldest due command waited less than the lag threshold.
    pub keeping_up: bool,
}

impl WorkerHealth {
    fn starting() -> Self {
        Self {
            connected: false,
            lease_errors: 0,
            in_flight: 0,
            oldest_due_age: None,
            keeping_up: false,
        }
    }

    /// Whether a readiness probe should pass.
    pub fn is_ready(&self) -> bool {
        self.connected && self.keeping_up
    }
}

/// What a graceful shutdown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Handlers that were running at shutdown and finished in time.
    pub finished: usize,
    /// Commands given back: handlers stopped at the deadline, and commands
    /// leased ahead that never started.
    pub released: usize,
}

/// Records in the catalog that this worker serves `types` (at start and
/// every [`SERVED_EVERY`]). A failure is logged, never fatal: the catalog
/// informs operators, and the work goes on without it.
async fn record_served<T: Transport>(transport: &T, types: &[CommandType]) {
    if let Err(error) = transport.catalog_register(types.to_vec(), true).await {
        warn!(error = %error.report(), "cmdbus: recording served command types in the catalog failed");
    }
}

struct Runtime<T: Transport> {
    config: WorkerBuilder<T>,
    registry: Arc<Registry>,
    /// The command types this worker serves, as the catalog records them.
    served: Vec<CommandType>,
    /// This worker's periodic schedules, awaited at shutdown so that none
    /// sends after `shutdown` returned.
    schedules: Vec<tokio::task::JoinHandle<()>>,
    wakeups: crate::WakeUps,
    stopped: watch::Receiver<bool>,
    health: Arc<Mutex<WorkerHealth>>,
}

impl<T: Transport> Runtime<T> {
    async fn run(mut self) -> ShutdownReport {
        let (outcomes, receiver) = mpsc::unbounded_channel();
        // Fired when a retry was recorded: the loop then recomputes how long
        // to sleep, so the retry runs when due, not at the next poll.
        let retried = Arc::new(Notify::new());
        let completer =
            tokio::spawn(complete(self.config.transport.clone(), receiver, Arc::clone(&retried)));
        let mut work = Work::default();
        let mut lease_errors = 0u32;
        let mut next_rescue = Instant::now();
        let mut next_served = Instant::now() + SERVED_EVERY;
        let heartbeat_every = (self.config.visibility_timeout / 3).max(MIN_HEARTBEAT);
        let mut next_heartbeat = Instant::now() + heartbeat_every;
        let mut backlog = false;
        let mut pace = Pace::new(self.config.prefetch, self.config.concurrency);
        let mut leased_total = 0usize;

        loop {
            while let Some(done) = work.tasks.try_join_next_with_id() {
                work.finished(&done, &mut pace);
            }
            if Instant::now() >= next_rescue {
                next_rescue = Instant::now() + self.config.rescue_interval;
                self.maintain().await;
            }
            if Instant::now() >= next_served {
                next_served = Instant::now() + SERVED_EVERY;
                record_served(&self.config.transport, &self.served).await;
            }
            if Instant::now() >= next_heartbeat {
                next_heartbeat = Instant::now() + heartbeat_every;
                self.heartbeat(&mut work).await;
            }
            self.start_waiting(&mut work, &outcomes);
            let prefetch = pace.prefetch();
            let room = (self.config.concurrency + prefetch)
                .saturating_sub(work.tasks.len() + work.waiting.len());
            let mut wait = self.config.poll_interval;
            // Lease again once the commands waiting here fall to half the prefetch.
            if room == 0 || work.waiting.len() > prefetch / 2 {
                // Work may be waiting: lease again as soon as there is room.
                backlog = true;
            } else {
                let limit = room.min(self.config.batch_size);
                let leased = self.lease(limit, &mut leased_total).await;
                lease_errors = if leased.is_ok() { 0 } else { lease_errors.saturating_add(1) };
                self.update_health(|h| {
                    h.connected = leased.is_ok();
                    h.lease_errors = lease_errors;
                });
                match leased {
                    Ok(Polled { commands, next_due_in, .. }) => {
                        // A full batch means more may be due; a partial one
                        // means the queue is drained until a wake-up says
                        // otherwise or the next scheduled command is due.
                        backlog = commands.len() == limit;
                        work.waiting.extend(commands);
                        self.start_waiting(&mut work, &outcomes);
                        if backlog && work.tasks.len() < self.config.concurrency {
                            continue;
                        }
                        if let Some(due) = next_due_in {
                            wait = wait.min(due);
                        }
                    }
                    Err(error) => {
                        // The database may be restarting: back off, then try again.
                        wait = Duration::from_millis(50 << lease_errors.min(5))
                            .min(self.config.poll_interval);
                        warn!(error = %error.report(), retry_in = ?wait, "cmdbus: leasing failed");
                    }
                }
            }
            let in_flight = work.tasks.len();
            self.update_health(|h| h.in_flight = in_flight);
            // Wake for maintenance and heartbeats on time too, whatever the poll interval.
            let deadline = (Instant::now() + wait).min(next_rescue).min(next_heartbeat);
            let woken = loop {
                tokio::select! {
                    // Shutdown asked, or the Worker handle dropped.
                    _ = self.stopped.changed() => break false,
                    () = self.wakeups.next() => break true,
                    () = retried.notified() => break true,
                    Some(done) = work.tasks.join_next_with_id(), if !work.tasks.is_empty() => {
                        work.finished(&done, &mut pace);
                        self.start_waiting(&mut work, &outcomes);
                        // Freed capacity only matters when work is known to wait.
                        if backlog && work.waiting.len() <= pace.prefetch() / 2 {
                            break true;
                        }
                    }
                    () = sleep_until(deadline) => break true,
                }
            };
            if !woken {
                break;
            }
        }
        let schedules = std::mem::take(&mut self.schedules);
        let report = self.drain(work, outcomes, completer).await;
        for schedule in schedules {
            // A schedule mid-send finishes that send, then sees the stop.
            let _ = schedule.await;
        }
        report
    }

    /// Starts waiting commands on free handler slots, oldest first.
    fn start_waiting(&self, work: &mut Work, outcomes: &mpsc::UnboundedSender<Recorded>) {
        while work.tasks.len() < self.config.concurrency {
            let Some(command) = work.waiting.pop_front() else { break };
            let lease = LeaseRef::of(&command);
            let abort = work.tasks.spawn(self.handle(command, outcomes.clone()));
            work.running.insert(abort.id(), Running { lease, abort });
        }
    }

    /// Rescues expired leases (each retried after its type's backoff),
    /// recounts flow limits, and samples the queues for metrics and health.
    async fn maintain(&self) {
        // A crashed attempt is retried after its type's backoff, as a failed one is.
        let backoff = |expired: &crate::ExpiredLease| {
            let lease = &expired.lease;
            self.registry
                .get(&lease.domain, &expired.command_type)
                .map_or_else(RetryPolicy::default, |entry| entry.policy.clone())
                .delay_after(expired.attempts)
        };
        if let Err(error) = self.config.transport.leases_rescue_with(backoff).await {
            warn!(error = %error.report(), "cmdbus: rescuing expired leases failed");
        }
        if let Err(error) = self.config.transport.limits_recount().await {
            warn!(error = %error.report(), "cmdbus: recounting flow limits failed");
        }
        match self.config.transport.queue_stats(&self.config.domains).await {
            Ok(stats) => {
                telemetry::queues(&self.config.domains, &stats);
                let oldest = stats.iter().map(|s| s.oldest_due_age).max().unwrap_or_default();
                self.update_health(|h| h.oldest_due_age = Some(oldest));
            }
            Err(error) => debug!(error = %error.report(), "cmdbus: sampling queue stats failed"),
        }
    }

    fn update_health(&self, change: impl FnOnce(&mut WorkerHealth)) {
        let mut health = self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut health);
        let threshold = self.config.lag_threshold;
        health.keeping_up =
            health.connected && health.oldest_due_age.is_some_and(|age| age <= threshold);
    }

    /// Leases up to `limit`; every eighth command this worker leases is the
    /// oldest due whatever its priority, so low priorities never starve.
    async fn lease(&self, limit: usize, leased: &mut usize) -> Result<Polled> {
        let oldest_first = (*leased + limit) / OLDEST_FIRST_EVERY - *leased / OLDEST_FIRST_EVERY;
        let params = CommandsLease::new(
            self.config.domains.clone(),
            limit,
            self.config.visibility_timeout,
            self.config.worker_id.clone(),
        )
        .with_oldest_first(oldest_first);
        let polled = self.config.transport.commands_poll(params).await?;
        *leased += polled.commands.len();
        Ok(polled)
    }

    /// Keeps the leases of running handlers and waiting commands alive, one
    /// statement for all. A lease found gone is no longer this worker's: its
    /// outcome could not be recorded and the command may already run
    /// elsewhere, so its handler is stopped (its transaction rolls back), a
    /// waiting command is dropped, and the fact logged.
    async fn heartbeat(&self, work: &mut Work) {
        if work.running.is_empty() && work.waiting.is_empty() {
            return;
        }
        let leases = work.leases().collect();
        let lost = match self
            .config
            .transport
            .leases_extend(leases, self.config.visibility_timeout)
            .await
        {
            Ok(lost) => lost,
            Err(error) => {
                warn!(error = %error.report(), count = work.running.len() + work.waiting.len(), "cmdbus: extending leases failed; retrying at the next heartbeat");
                return;
            }
        };
        if lost.is_empty() {
            return;
        }
        let lost: HashSet<LeaseRef> = lost.into_iter().collect();
        let gone = |lease: &LeaseRef| {
            let gone = lost.contains(lease);
            if gone {
                warn!(
                    domain = %lease.domain,
                    command_id = %lease.command_id,
                    "cmdbus: lease lost (expired or taken over); stopping its handler, the command may run again elsewhere"
                );
            }
            gone
        };
        work.running.retain(|_, run| {
            let keep = !gone(&run.lease);
            if !keep {
                run.abort.abort();
            }
            keep
        });
        work.waiting.retain(|command| !gone(&LeaseRef::of(command)));
    }

    fn handle(
        &self,
        command: LeasedCommand,
        outcomes: mpsc::UnboundedSender<Recorded>,
    ) -> impl std::future::Future<Output = Duration> + Send + 'static {
        let transport = self.config.transport.clone();
        let registry = Arc::clone(&self.registry);
        let classifier = self.config.classifier.clone();
        let default_timeout = self.config.handler_timeout;
        let leased_at = Instant::now();
        let mut ctx =
            HandlerContext::for_lease(&command, &transport, self.config.max_payload_bytes);
        let span = info_span!(
            "cmdbus.handle",
            domain = %command.domain,
            command_type = %command.command_type,
            command_id = %command.command_id,
            correlation_id = %command.correlation_id,
            attempt = command.attempt,
            traceparent = %ctx.traceparent(),
            parent_traceparent = command.traceparent.map(tracing::field::display),
            outcome = Empty,
            error.code = Empty,
            error.message = Empty,
        );
        let handler_span = span.clone();
        async move {
            let entry = registry.get(&command.domain, &command.command_type);
            let labels = telemetry::Labels::of(entry, &command);
            let kind = executor::execute(entry, &classifier, &command, &mut ctx, default_timeout).await;
            let ran = leased_at.elapsed();
            telemetry::handled(&handler_span, &labels, &kind, ran);
            let completed = matches!(kind, OutcomeKind::Completed { .. });
            let outcome = Outcome::of(&command, kind);
            // The handler's own transaction commits only with a success;
            // on any failure it is dropped, which rolls it back.
            let unit_of_work = ctx.take_unit_of_work().filter(|_| completed);
            let Some(unit_of_work) = unit_of_work else {
                let _ = outcomes.send(Recorded { outcome, leased_at, domain: labels.domain });
                return ran;
            };
            // Boxed: only handlers with a transaction take this path, and
            // its future would otherwise make every handler task four
            // times larger (4.5 KB, copied on each spawn).
            match Box::pin(transport.command_record_in(unit_of_work, outcome)).await {
                Ok(RecordResult::Recorded) => {
                    telemetry::recorded(&labels.domain, leased_at.elapsed());
                }
                Ok(_) => {
                    warn!("cmdbus: lease lost before completion; handler transaction rolled back");
                }
                Err(error) => {
                    warn!(error = %error.report(), "cmdbus: committing the handler transaction failed");
                    let error = HandlerError::transient("commit_failed", error.report().to_string());
                    let policy = entry.map(|entry| entry.policy.clone()).unwrap_or_default();
                    let kind = executor::decide(&policy, &classifier, &command, &error);
                    let outcome = Outcome::of(&command, kind);
                    let _ = outcomes.send(Recorded { outcome, leased_at, domain: labels.domain });
                }
            }
            ran
        }
        .instrument(span)
    }

    async fn drain(
        self,
        mut work: Work,
        outcomes: mpsc::UnboundedSender<Recorded>,
        completer: tokio::task::JoinHandle<()>,
    ) -> ShutdownReport {
        let mut report = ShutdownReport::default();
        let deadline = sleep(self.config.shutdown_timeout);
        tokio::pin!(deadline);
        while !work.tasks.is_empty() {
            tokio::select! {
                Some(done) = work.tasks.join_next_with_id() => {
                    work.running.remove(&task_id(&done));
                    report.finished += 1;
                }
                () = &mut deadline => break,
            }
        }
        work.tasks.abort_all();
        while let Some(done) = work.tasks.join_next_with_id().await {
            // A handler that finished in the same instant keeps its outcome.
            if done.is_ok() {
                work.running.remove(&task_id(&done));
                report.finished += 1;
            }
        }
        drop(outcomes);
        let _ = completer.await;
        // Stopped handlers and commands that never started go back.
        let leases: Vec<LeaseRef> = work.leases().collect();
        let count = leases.len();
        if count > 0 {
            match self.config.transport.leases_release(leases).await {
                Ok(n) => report.released = usize::try_from(n).unwrap_or(usize::MAX),
                Err(error) => {
                    warn!(error = %error.report(), count, "cmdbus: releasing leases at shutdown failed; they return when they expire");
                }
            }
        }
        report
    }
}

/// How many commands to lease ahead of free slots: as many as the running
/// handlers will free within [`Pace::HORIZON`], judged by how long handlers
/// have been taking (a moving average), at most `max`; none before the
/// first handler has finished. Fast handlers get whole batches per round
/// trip; slow ones do not hoard work that other workers could run.
struct Pace {
    max: usize,
    concurrency: usize,
    /// Average handler run time in microseconds, once one has finished.
    average_us: Option<f64>,
}

impl Pace {
    const HORIZON: Duration = Duration::from_millis(100);

    fn new(max: usize, concurrency: usize) -> Self {
        Self { max, concurrency, average_us: None }
    }

    /// A handler finished after running `ran`.
    fn finished(&mut self, ran: Duration) {
        let us = ran.as_secs_f64() * 1e6;
        self.average_us = Some(self.average_us.map_or(us, |avg| 0.8 * avg + 0.2 * us));
    }

    fn prefetch(&self) -> usize {
        let Some(average) = self.average_us else { return 0 };
        let per_slot = Self::HORIZON.as_secs_f64() * 1e6 / average.max(1.0);
        let ahead = (per_slot * self.concurrency as f64).floor();
        if ahead >= self.max as f64 { self.max } else { ahead as usize }
    }
}

/// What a worker holds: running handler tasks and leased commands waiting
/// for a free slot.
#[derive(Default)]
struct Work {
    /// Each task returns how long its handler ran.
    tasks: JoinSet<Duration>,
    running: HashMap<Id, Running>,
    waiting: VecDeque<LeasedCommand>,
}

impl Work {
    /// Forgets a finished task; its run time paces leasing ahead.
    fn finished(
        &mut self,
        done: &std::result::Result<(Id, Duration), tokio::task::JoinError>,
        pace: &mut Pace,
    ) {
        self.running.remove(&task_id(done));
        if let Ok((_, ran)) = done {
            pace.finished(*ran);
        }
    }

    /// Every lease held: running handlers' and waiting commands'.
    fn leases(&self) -> impl Iterator<Item = LeaseRef> + '_ {
        let running = self.running.values().map(|r| r.lease.clone());
        running.chain(self.waiting.iter().map(LeaseRef::of))
    }
}

/// A handler task this worker runs, and the lease it runs under.
struct Running {
    lease: LeaseRef,
    abort: AbortHandle,
}

fn task_id(done: &std::result::Result<(Id, Duration), tokio::task::JoinError>) -> Id {
    match done {
        Ok((id, _)) => *id,
        Err(error) => error.id(),
    }
}

/// Records outcomes in batches until every sender is gone.
async fn complete<T: Transport>(
    transport: T,
    mut receiver: mpsc::UnboundedReceiver<Recorded>,
    retried: Arc<Notify>,
) {
    let mut pending = Vec::with_capacity(RECORD_BATCH);
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut leases = Vec::with_capacity(RECORD_BATCH);
    while receiver.recv_many(&mut pending, RECORD_BATCH).await > 0 {
        // Outcomes move into the batch; what telemetry needs stays beside it.
        for Recorded { outcome, leased_at, domain } in pending.drain(..) {
            batch.push(outcome);
            leases.push((leased_at, domain));
        }
        let has_retry = batch.iter().any(|o| matches!(o.kind, OutcomeKind::Retry { .. }));
        let mut delay = Duration::from_millis(50);
        // Retried while the database is away; if it never comes back, the
        // leases expire and the commands are delivered again.
        for attempt in 1..=8 {
            match transport.commands_record(&batch).await {
                Ok(results) => {
                    for (result, (leased_at, domain)) in results.iter().zip(&leases) {
                        if *result == RecordResult::Recorded {
                            telemetry::recorded(domain, leased_at.elapsed());
                        }
                    }
                    let lost = results.iter().filter(|r| **r == RecordResult::LeaseLost).count();
                    if lost > 0 {
                        warn!(lost, "cmdbus: outcomes dropped because their lease was lost");
                    }
                    if has_retry {
                        retried.notify_one();
                    }
                    break;
                }
                Err(error) => {
                    warn!(error = %error.report(), attempt, "cmdbus: recording outcomes failed");
                    sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
        batch.clear();
        leases.clear();
    }
}

/// An outcome on its way to the completer, with when its lease began and
/// its domain label.
struct Recorded {
    outcome: Outcome,
    leased_at: Instant,
    domain: metrics::SharedString,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leasing_ahead_follows_how_long_handlers_take() {
        let mut pace = Pace::new(256, 16);
        assert_eq!(pace.prefetch(), 0, "nothing is known before a handler finished");
        pace.finished(Duration::from_micros(50));
        assert_eq!(pace.prefetch(), 256, "fast handlers: a whole batch ahead");
        for _ in 0..30 {
            pace.finished(Duration::from_secs(1));
        }
        assert_eq!(pace.prefetch(), 1, "one-second handlers: 16 slots free ~1.6 in 100 ms");
        for _ in 0..30 {
            pace.finished(Duration::from_millis(10));
        }
        // 16 slots × 10 per 100 ms, once the one-second runs have faded.
        assert!((140..=160).contains(&pace.prefetch()), "{}", pace.prefetch());
        assert_eq!(Pace::new(0, 16).prefetch(), 0);
    }
}
