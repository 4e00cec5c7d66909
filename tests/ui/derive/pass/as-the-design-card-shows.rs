// The design card's form, in a package with no direct serde, schemars or
// inventory dependency; both import styles and the path form work.
use cmdbus::{Command, HandlerError, Payload, handler};

#[derive(Payload)]
struct DebitReceipt {
    balance_cents: i64,
}

#[derive(Payload)]
struct Address {
    city: String,
}

#[derive(Command)]
#[command(domain = "payments", name = "DebitAccount", reply = DebitReceipt)]
struct DebitAccount {
    account: String,
    amount_cents: i64,
    billing: Address,
}

#[derive(cmdbus::Command)]
#[command(domain = "payments")]
enum Refund {
    Full,
    Partial { cents: i64 },
}

#[handler]
async fn debit(cmd: DebitAccount) -> Result<DebitReceipt, HandlerError> {
    Ok(DebitReceipt { balance_cents: cmd.amount_cents + cmd.account.len() as i64 + cmd.billing.city.len() as i64 })
}

fn main() {
    assert_eq!(DebitAccount::DOMAIN, "payments");
    assert_eq!(<Refund as Command>::NAME, "Refund");
    let _ = (Refund::Full, Refund::Partial { cents: 1 });
}
