#[cmdbus::command(domain = "payments", domain = "billing")]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
