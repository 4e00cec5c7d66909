use cmdbus::Command;

#[derive(Command)]
#[command(domain = "payments", priority = "high")]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
