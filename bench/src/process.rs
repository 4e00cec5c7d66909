//! Process throughput: a backlog of started three-step processes drained by
//! one worker, timed until every one is COMPLETED. Each step costs its own
//! command (leased and completed with its batch's count-down and the
//! process's Step event in one statement) plus that event's handler: lock
//! the instance, read the reply, store the next step's batch, save.

use std::time::{Duration, Instant};

use cmdbus::{HandlerError, Process, Reacts, Steps, TypedReply, command, handler};
use sqlx::AssertSqlSafe;

use crate::{Config, drop_schema, fresh_bus};

/// A step that does nothing.
#[command(domain = "bench-process")]
pub(crate) struct BenchStep {
    n: u32,
}

#[handler]
async fn bench_step(cmd: BenchStep) -> Result<(), HandlerError> {
    let _ = cmd.n;
    Ok(())
}

/// Three steps, one after the other.
#[derive(cmdbus::Process)]
#[process(domain = "bench-process", steps(BenchStep))]
pub(crate) struct BenchOrder {
    done: u32,
}

impl Process for BenchOrder {
    type Timeout = ();
    fn start(&mut self, steps: &mut Steps<Self>) {
        steps.send(BenchStep { n: 1 });
    }
}

impl Reacts<BenchStep> for BenchOrder {
    fn on_reply(&mut self, _: TypedReply<()>, steps: &mut Steps<Self>) {
        self.done += 1;
        if self.done < 3 {
            steps.send(BenchStep { n: self.done + 1 });
        }
    }
}

/// Processes completed per second (three steps each), `n` started before
/// the worker (concurrency 64) starts.
pub(crate) async fn rate(config: &Config) -> f64 {
    let n: u64 = if config.quick { 500 } else { 2_000 };
    let bus = fresh_bus(&config.url).await;
    for _ in 0..n {
        bus.start_process(uuid::Uuid::now_v7(), BenchOrder { done: 0 }).await.expect("start");
    }
    let count = format!(
        r#"SELECT count(*) FROM "{}".processes WHERE status = 'COMPLETED'"#,
        bus.transport().schema()
    );
    let at = Instant::now();
    let worker =
        bus.worker().domain("bench-process").concurrency(64).start().await.expect("worker");
    loop {
        let done: i64 = sqlx::query_scalar(AssertSqlSafe(count.clone()))
            .fetch_one(bus.pool())
            .await
            .expect("count");
        if done as u64 >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / at.elapsed().as_secs_f64();
    worker.shutdown().await;
    drop_schema(&bus).await;
    rate
}
