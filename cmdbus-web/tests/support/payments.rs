//! What the console tests (`console.rs`, `browser.rs`) triage: payments
//! that closed and frozen accounts refuse permanently, and the console's
//! users (ann operates, vic views; both with the password `s3cret`).

use std::time::Duration;

use cmdbus::{CommandStatus, HandlerError, handler};
use cmdbus_pg::PgBus;
use cmdbus_web::{Users, hash_password};
use uuid::Uuid;

/// A payment.
#[derive(cmdbus::Command)]
#[command(domain = "payments")]
pub(crate) struct Payment {
    pub(crate) account: String,
    pub(crate) amount: u32,
}

#[handler]
async fn pay(cmd: Payment) -> Result<(), HandlerError> {
    if cmd.account.starts_with("closed") {
        let message = format!("account {} is closed", cmd.account);
        return Err(HandlerError::permanent("account_closed", message));
    }
    if cmd.account.starts_with("frozen") {
        return Err(HandlerError::permanent("account_frozen", "the partner froze the account"));
    }
    Ok(())
}

/// ann (operator) and vic (viewer).
pub(crate) fn users() -> Users {
    let hash = hash_password("s3cret").expect("hash");
    Users::parse(&format!("ann operator {hash}\nvic viewer {hash}")).expect("users")
}

/// Waits until the payment `id` is in `status`.
pub(crate) async fn wait_status(bus: &PgBus, id: Uuid, status: CommandStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while bus.command::<Payment>(id).await.expect("command").status != status {
        assert!(tokio::time::Instant::now() < deadline, "{id} never became {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `accounts` sent as payments of 25 and run by a worker until each has
/// ended: refused ones in the TSQ, the others completed.
pub(crate) async fn payments(bus: &PgBus, accounts: &[&str]) -> Vec<Uuid> {
    bus.register::<Payment>().await.expect("catalog");
    let mut ids = Vec::new();
    for account in accounts {
        let payment = Payment { account: (*account).into(), amount: 25 };
        ids.push(bus.send(payment).await.expect("send").command_id());
    }
    let worker = run_worker(bus).await;
    for (id, account) in ids.iter().zip(accounts) {
        let refused = account.starts_with("closed") || account.starts_with("frozen");
        let status =
            if refused { CommandStatus::InTroubleshootingQueue } else { CommandStatus::Completed };
        wait_status(bus, *id, status).await;
    }
    worker.shutdown().await;
    ids
}

/// A worker for the payments domain.
pub(crate) async fn run_worker(bus: &PgBus) -> cmdbus::Worker {
    bus.worker()
        .domain("payments")
        .poll_interval(Duration::from_millis(20))
        .start()
        .await
        .expect("worker")
}
