//! A worker process for crash tests: serves domain `crash` on the schema
//! given as its argument; its `Hang` handler never returns, so the parent can
//! SIGKILL it mid-handler.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use cmdbus::{HandlerError, handler};
use cmdbus_pg::PgBus;
use cmdbus_tests::crash::{BatchEnded, CrashStep, CrashUndo, Hang, Slow};

#[handler]
async fn hang(_cmd: Hang) -> Result<(), HandlerError> {
    std::future::pending::<()>().await;
    Ok(())
}

#[handler]
async fn slow(cmd: Slow) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_millis(cmd.ms)).await;
    Ok(())
}

#[handler]
async fn crash_step(cmd: CrashStep) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_millis(10 + u64::from(cmd.order % 7) * 5)).await;
    if cmd.refuse {
        return Err(HandlerError::business_rule("refused", "step refused"));
    }
    Ok(())
}

#[handler]
async fn crash_undo(_cmd: CrashUndo) -> Result<(), HandlerError> {
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}

#[handler]
async fn batch_ended(_cmd: BatchEnded) -> Result<(), HandlerError> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schema = std::env::args().nth(1).ok_or("usage: crash_worker <schema>")?;
    let bus = PgBus::builder(cmdbus_tests::pool().await).schema(schema).build().await?;
    let _worker = bus
        .worker()
        .domain("crash")
        .concurrency(16)
        .visibility_timeout(Duration::from_millis(300))
        .rescue_interval(Duration::from_millis(100))
        .poll_interval(Duration::from_millis(100))
        .start()
        .await?;
    println!("ready");
    std::future::pending::<()>().await;
    Ok(())
}
