//! Order fulfilment as a process manager: reserve stock, debit the
//! payment, ship. Shipping fails for the second order, so the bus runs the
//! compensations of the completed steps newest first, each awaited:
//! refund the payment, then release the stock.
//!
//! `cargo run -p cmdbus-examples --example order_fulfilment` (PostgreSQL
//! at `$DATABASE_URL`, default 127.0.0.1:5432).
#![allow(clippy::print_stdout)]

use std::time::Duration;

use cmdbus::{Command, HandlerError, Process, ProcessStatus, Reacts, Steps, TypedReply, handler};
use cmdbus_pg::PgBus;
use uuid::Uuid;

const SCHEMA: &str = "cmdbus_orders_example";

#[derive(Command)]
#[command(domain = "orders", reply = String)]
struct ReserveStock {
    order: Uuid,
    sku: String,
}

#[derive(Command)]
#[command(domain = "orders")]
struct ReleaseStock {
    reservation: String,
}

#[derive(Command)]
#[command(domain = "orders", reply = String)]
struct DebitPayment {
    order: Uuid,
    amount_cents: i64,
}

#[derive(Command)]
#[command(domain = "orders")]
struct RefundPayment {
    payment: String,
}

#[derive(Command)]
#[command(domain = "orders", max_attempts = 1)]
struct Ship {
    order: Uuid,
    address: String,
}

#[handler]
async fn reserve(cmd: ReserveStock) -> Result<String, HandlerError> {
    println!("  handler: reserve {} for order {}", cmd.sku, cmd.order);
    Ok(format!("reservation-{}", cmd.sku))
}

#[handler]
async fn release(cmd: ReleaseStock) -> Result<(), HandlerError> {
    println!("  handler: release {}", cmd.reservation);
    Ok(())
}

#[handler]
async fn debit(cmd: DebitPayment) -> Result<String, HandlerError> {
    println!("  handler: debit {} cents for order {}", cmd.amount_cents, cmd.order);
    Ok(format!("payment-{}", cmd.order.simple()))
}

#[handler]
async fn refund(cmd: RefundPayment) -> Result<(), HandlerError> {
    // A slow partner: the release below waits for this to end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    println!("  handler: refund {}", cmd.payment);
    Ok(())
}

#[handler]
async fn ship(cmd: Ship) -> Result<(), HandlerError> {
    println!("  handler: ship order {} to {}", cmd.order, cmd.address);
    if cmd.address.is_empty() {
        return Err(HandlerError::business_rule("no_address", "the order has no address"));
    }
    Ok(())
}

/// The process: its state is stored after every step.
#[derive(Process, Debug)]
#[process(
    domain = "orders",
    steps(ReserveStock, DebitPayment, Ship),
    compensations(ReleaseStock, RefundPayment)
)]
struct OrderFulfilment {
    order: Uuid,
    sku: String,
    amount_cents: i64,
    address: String,
    reservation: Option<String>,
    payment: Option<String>,
}

impl cmdbus::process::Process for OrderFulfilment {
    /// The payment partner has 10 minutes to answer.
    type Timeout = ();

    fn start(&mut self, steps: &mut Steps<Self>) {
        steps.send(ReserveStock { order: self.order, sku: self.sku.clone() });
    }

    fn on_timeout(&mut self, (): (), steps: &mut Steps<Self>) {
        if self.payment.is_none() {
            steps.fail("the payment partner never answered");
        }
    }
}

impl Reacts<ReserveStock> for OrderFulfilment {
    fn on_reply(&mut self, reply: TypedReply<String>, steps: &mut Steps<Self>) {
        let TypedReply::Success(reservation) = reply else {
            return steps.fail("no stock");
        };
        steps.compensate_with(ReleaseStock { reservation: reservation.clone() });
        self.reservation = Some(reservation);
        steps.send(DebitPayment { order: self.order, amount_cents: self.amount_cents });
        steps.timeout_after(Duration::from_secs(600), ());
    }
}

impl Reacts<DebitPayment> for OrderFulfilment {
    fn on_reply(&mut self, reply: TypedReply<String>, steps: &mut Steps<Self>) {
        let TypedReply::Success(payment) = reply else {
            return steps.fail("payment refused");
        };
        steps.compensate_with(RefundPayment { payment: payment.clone() });
        self.payment = Some(payment);
        steps.send(Ship { order: self.order, address: self.address.clone() });
    }
}

impl Reacts<Ship> for OrderFulfilment {
    fn on_reply(&mut self, reply: TypedReply<()>, steps: &mut Steps<Self>) {
        match reply {
            // Shipped: the order is done (the payment timeout is moot).
            TypedReply::Success(()) => steps.complete(),
            _ => steps.fail("shipping failed"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), cmdbus::Error> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let bus = PgBus::connect_schema(&url, SCHEMA).await?;
    let worker = bus.worker().domain("orders").concurrency(4).start().await?;

    let orders = [("tea", "1 Main St"), ("coffee", "")];
    let mut ids = Vec::new();
    for (sku, address) in orders {
        let order = Uuid::now_v7();
        let state = OrderFulfilment {
            order,
            sku: sku.into(),
            amount_cents: 1_250,
            address: address.into(),
            reservation: None,
            payment: None,
        };
        // The start event's reply says the process exists and has sent its
        // first step.
        let started = bus.start_process(order, state).await?;
        started.wait_reply(Duration::from_secs(10)).await?;
        println!("Started order {order} ({sku}, address {address:?}).");
        ids.push(order);
    }
    for id in ids {
        let view = loop {
            let view = bus.process::<OrderFulfilment>(id).await?;
            if view.status.is_terminal() {
                break view;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        println!("Order {id}: {}", view.status);
        if view.status == ProcessStatus::Compensated {
            println!("  why: {}", view.last_error.unwrap_or_default());
        }
    }
    worker.shutdown().await;
    println!("\nEvery step, event and compensation is a command with the order's correlation id:");
    println!("  cmdbus --schema {SCHEMA} process list");
    Ok(())
}
