use cmdbus::Command;

#[derive(Command)]
#[command(domain = "payments", retries = 3)]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
