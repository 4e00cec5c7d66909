//! A producer sends typed commands, a worker handles them, the producer
//! awaits the replies: a success, a business-rule refusal, a transient
//! failure that succeeds on retry, and an idempotent duplicate send.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use cmdbus::{HandlerContext, HandlerError, SendOptions, TypedReply, command, handler, reply};
use cmdbus_pg::PgBus;

#[reply]
#[derive(Debug)]
struct DebitReceipt {
    account: String,
    balance_cents: i64,
}

#[command(domain = "payments", reply = DebitReceipt, backoff = ["200ms"])]
struct DebitAccount {
    account: String,
    amount_cents: i64,
}

#[handler]
async fn debit(cmd: DebitAccount, ctx: &mut HandlerContext) -> Result<DebitReceipt, HandlerError> {
    if cmd.account.starts_with("closed-") {
        return Err(HandlerError::permanent("account_closed", "the account is closed at the bank"));
    }
    if cmd.account == "flaky-partner" && ctx.attempt() == 1 {
        return Err(HandlerError::transient("partner_timeout", "the partner bank timed out"));
    }
    let balance_cents = 10_000 - cmd.amount_cents;
    if balance_cents < 0 {
        return Err(HandlerError::business_rule(
            "insufficient_funds",
            format!("account {} cannot cover {} cents", cmd.account, cmd.amount_cents),
        ));
    }
    Ok(DebitReceipt { account: cmd.account, balance_cents })
}

#[tokio::main]
async fn main() -> Result<(), cmdbus::Error> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let bus = PgBus::connect_schema(&url, "cmdbus_demo").await?;
    println!("cmdbus demo on {url} (schema cmdbus_demo)");
    let worker = bus.worker().domain("payments").concurrency(4).start().await?;

    let requests = [("alice", 2_500), ("bob", 25_000), ("flaky-partner", 100)];
    let mut flaky = None;
    for (account, amount_cents) in requests {
        let sent = bus.send(DebitAccount { account: account.into(), amount_cents }).await?;
        if account == "flaky-partner" {
            flaky = Some(sent.command_id());
        }
        let reply =
            bus.wait_reply::<DebitAccount>(sent.command_id(), Duration::from_secs(5)).await?;
        let record = bus.command::<DebitAccount>(sent.command_id()).await?;
        match reply {
            TypedReply::Success(receipt) => println!(
                "  debit {account:<14} {amount_cents:>6} -> SUCCESS, balance {} (attempts: {})",
                receipt.balance_cents, record.attempts
            ),
            TypedReply::Failed { code, message, .. } => {
                println!("  debit {account:<14} {amount_cents:>6} -> FAILED {code}: {message}");
            }
            other => println!("  debit {account:<14} -> {other:?}"),
        }
    }

    let id = uuid::Uuid::now_v7();
    let options = SendOptions::new().command_id(id);
    let first = bus
        .send_with(DebitAccount { account: "carol".into(), amount_cents: 1 }, options.clone())
        .await?;
    let again =
        bus.send_with(DebitAccount { account: "carol".into(), amount_cents: 1 }, options).await?;
    println!("  same command id sent twice -> {first:?}, then {again:?}");

    println!("  audit trail of the retried debit:");
    if let Some(flaky) = flaky {
        for entry in bus.audit_trail("payments", flaky).await? {
            println!(
                "    {} attempt {} {}",
                entry.at.format("%H:%M:%S%.3f"),
                entry.attempt,
                entry.event
            );
        }
    }
    let closed =
        bus.send(DebitAccount { account: "closed-dave".into(), amount_cents: 500 }).await?;
    while bus.command::<DebitAccount>(closed.command_id()).await?.status
        != cmdbus::CommandStatus::InTroubleshootingQueue
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "  debit closed-dave       500 -> in the troubleshooting queue: {}",
        closed.command_id()
    );
    println!("  operators take it from there: cmdbus --schema cmdbus_demo tsq list");
    let report = worker.shutdown().await;
    println!("worker stopped: {report:?}");
    Ok(())
}
