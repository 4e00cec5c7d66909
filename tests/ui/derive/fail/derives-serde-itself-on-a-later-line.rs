use cmdbus::Command;

#[derive(Command)]
#[derive(cmdbus::__private::serde::Serialize)]
#[serde(crate = "cmdbus::__private::serde")]
#[command(domain = "payments")]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
