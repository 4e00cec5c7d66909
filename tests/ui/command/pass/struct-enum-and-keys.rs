// Compiled in a package with no direct serde, schemars or inventory dependency.
use cmdbus::Command;

#[cmdbus::command(domain = "payments", reply = Receipt, max_attempts = 5, backoff = ["250ms", "10s", "5m", "1h"])]
struct DebitAccount {
    account: String,
    amount_cents: i64,
}

#[cmdbus::command(domain = "payments", name = "payments.Refund.v2")]
enum Refund {
    Full { order: u64 },
    Partial { order: u64, cents: i64 },
}

#[derive(cmdbus::__private::serde::Serialize, cmdbus::__private::serde::Deserialize)]
#[derive(cmdbus::__private::schemars::JsonSchema)]
#[serde(crate = "cmdbus::__private::serde")]
#[schemars(crate = "cmdbus::__private::schemars")]
struct Receipt {
    balance_cents: i64,
}

fn main() {
    assert_eq!(DebitAccount::DOMAIN, "payments");
    assert_eq!(DebitAccount::NAME, "DebitAccount");
    let policy = DebitAccount::retry_policy();
    assert_eq!(policy.max_attempts(), 5);
    assert_eq!(policy.backoff()[3], std::time::Duration::from_secs(3600));
    assert_eq!(Refund::NAME, "payments.Refund.v2");
    assert_eq!(Refund::retry_policy(), cmdbus::RetryPolicy::default());
    let schema = DebitAccount::payload_schema();
    assert_eq!(schema["properties"]["amount_cents"]["type"], "integer");
    let _ = (DebitAccount { account: String::new(), amount_cents: 1 }.amount_cents, Receipt { balance_cents: 0 }.balance_cents);
    let _ = Refund::Full { order: 1 };
    let _ = Refund::Partial { order: 1, cents: 2 };
}
