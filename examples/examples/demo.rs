//! A producer sends typed commands, a worker handles them, the producer
//! awaits the replies: a success, a business-rule refusal, a transient
//! failure that succeeds on retry, and an idempotent duplicate send.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use cmdbus::{Command, HandlerContext, HandlerError, Payload, SendOptions, TypedReply, handler};
use cmdbus_pg::PgBus;

#[derive(Payload, Debug)]
struct DebitReceipt {
    account: String,
    balance_cents: i64,
}

#[derive(Command)]
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
    let bus = PgBus::connect_schema(&url, SCHEMA).await?;
    println!("Connected to {} and migrated schema \"{SCHEMA}\".", without_password(&url));
    let worker = bus.worker().domain("payments").concurrency(4).start().await?;
    println!("A worker serves the \"payments\" domain with 4 handlers at a time.\n");

    let requests = [("alice", 2_500), ("bob", 25_000), ("flaky-partner", 100)];
    let mut flaky = None;
    for (account, amount_cents) in requests {
        let sent = bus.send(DebitAccount { account: account.into(), amount_cents }).await?;
        println!("Sent DebitAccount {{ account: {account}, amount: {amount_cents} cents }}.");
        if account == "flaky-partner" {
            flaky = Some(sent.clone());
        }
        let reply = sent.wait_reply(Duration::from_secs(5)).await?;
        let record = sent.record().await?;
        let attempts = match record.attempts {
            1 => "on the first attempt".to_owned(),
            n => format!("after {n} attempts"),
        };
        match reply {
            TypedReply::Success(receipt) => println!(
                "  The handler debited it {attempts}; the reply says the balance is now {} cents.",
                receipt.balance_cents
            ),
            TypedReply::Failed { code, message, .. } => println!(
                "  The handler refused it ({code}: {message}); the sender got a FAILED reply, nothing to retry."
            ),
            _ => println!("  An operator canceled it before it ran."),
        }
    }

    let id = uuid::Uuid::now_v7();
    let options = SendOptions::new().command_id(id);
    bus.send_with(DebitAccount { account: "carol".into(), amount_cents: 1 }, options.clone())
        .await?;
    let again =
        bus.send_with(DebitAccount { account: "carol".into(), amount_cents: 1 }, options).await?;
    println!(
        "\nSent a debit for carol twice with the same command id {id}:\n  the second send {}.",
        if again.is_duplicate() {
            "was recognised as a duplicate; only one debit exists"
        } else {
            "was stored again (this should never happen)"
        }
    );

    if let Some(flaky) = flaky {
        println!(
            "\nThe audit trail of the flaky-partner debit (first attempt timed out, retried):"
        );
        for entry in flaky.audit_trail().await? {
            println!(
                "  {}  attempt {}  {}",
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
        "\nSent a debit for closed-dave: the bank says the account is closed, a permanent error,\n\
         so command {} went to the troubleshooting queue for an operator.",
        closed.command_id()
    );
    let report = worker.shutdown().await;
    println!(
        "\nThe worker shut down gracefully: {} handler(s) finished, {} given back to the queue.",
        report.finished, report.released
    );
    Ok(())
}

/// The demo's own schema, so it never touches an application's `cmdbus` schema.
const SCHEMA: &str = "cmdbus_demo";

/// The URL as it may be printed: without a password.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
