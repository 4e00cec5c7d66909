use cmdbus::Command;

#[derive(Command)]
#[command(domain = "payments", timeout = "soon")]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
