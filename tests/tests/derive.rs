//! `#[derive(Command)]` and `#[derive(Payload)]`: what they generate
//! serializes, deserializes and describes the user's type as written, serde
//! attributes included, and the `Command` constants follow the keys.

use cmdbus::{Command, Payload};
use serde_json::json;

/// What the debit left.
#[derive(Payload, Debug, PartialEq)]
struct Receipt {
    balance_cents: i64,
}

#[derive(Payload, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Currency {
    Eur,
    UsDollar,
}

/// Debits an account.
#[derive(Command, Debug, PartialEq)]
#[command(domain = "payments", reply = Receipt, max_attempts = 5, backoff = ["1s"])]
struct DebitAccount {
    /// The account to debit.
    account: String,
    #[serde(rename = "cents")]
    amount_cents: i64,
    currency: Currency,
    #[serde(default)]
    memo: Option<String>,
}

#[derive(Command, Debug, PartialEq)]
#[command(domain = "payments", name = "RefundOrder", priority = -3)]
enum Refund {
    Full,
    Partial { cents: i64 },
}

/// An existing DTO with its own serde impls becomes a command with
/// `manual_serde` (this crate reaches serde through cmdbus's re-exports: it
/// has no serde dependency of its own).
#[derive(
    cmdbus::__private::serde::Serialize,
    cmdbus::__private::serde::Deserialize,
    cmdbus::__private::schemars::JsonSchema,
    Command,
)]
#[serde(crate = "cmdbus::__private::serde")]
#[schemars(crate = "cmdbus::__private::schemars")]
#[command(domain = "billing", manual_serde)]
struct Invoice {
    number: u32,
}

#[test]
fn a_derived_command_round_trips_as_written() {
    let cmd = DebitAccount {
        account: "alice".into(),
        amount_cents: 250,
        currency: Currency::UsDollar,
        memo: None,
    };
    let value = serde_json::to_value(&cmd).expect("serializes");
    assert_eq!(
        value,
        json!({ "account": "alice", "cents": 250, "currency": "us_dollar", "memo": null })
    );
    let back: DebitAccount = serde_json::from_value(
        json!({ "account": "alice", "cents": 250, "currency": "us_dollar" }),
    )
    .expect("deserializes, memo defaulted");
    assert_eq!(back, cmd);
    let error = serde_json::from_value::<DebitAccount>(json!({ "account": "alice" }))
        .expect_err("cents missing");
    assert!(error.to_string().contains("missing field `cents`"), "{error}");

    let refund = serde_json::to_value(Refund::Partial { cents: 3 }).expect("enum");
    assert_eq!(refund, json!({ "Partial": { "cents": 3 } }));
    assert_eq!(
        serde_json::from_value::<Refund>(json!("Full")).expect("unit variant"),
        Refund::Full
    );
    let receipt: Receipt = serde_json::from_value(json!({ "balance_cents": 1 })).expect("reply");
    assert_eq!(receipt, Receipt { balance_cents: 1 });
}

#[test]
fn keys_become_the_command_constants() {
    assert_eq!((DebitAccount::DOMAIN, DebitAccount::NAME), ("payments", "DebitAccount"));
    assert_eq!(DebitAccount::MAX_ATTEMPTS, 5);
    assert_eq!(DebitAccount::retry_policy().max_attempts(), 5);
    assert_eq!((Refund::DOMAIN, Refund::NAME), ("payments", "RefundOrder"));
    assert_eq!((Refund::PRIORITY, DebitAccount::PRIORITY), (-3, 0));
    assert_eq!(Invoice::NAME, "Invoice");
    let invoice = serde_json::to_value(Invoice { number: 7 }).expect("its own impl");
    assert_eq!(invoice, json!({ "number": 7 }));
}

#[test]
fn the_schema_describes_the_user_type_under_its_name() {
    let schema = DebitAccount::payload_schema();
    assert_eq!(schema["title"], "DebitAccount", "{schema:#}");
    assert_eq!(schema["description"], "Debits an account.");
    let properties = &schema["properties"];
    assert!(properties.get("cents").is_some() && properties.get("amount_cents").is_none());
    assert_eq!(properties["account"]["description"], "The account to debit.");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(required.contains(&"cents") && !required.contains(&"memo"), "{required:?}");
    let text = schema.to_string();
    assert!(text.contains("\"Currency\"") && !text.contains("__CmdbusSerde"), "{text}");
}
