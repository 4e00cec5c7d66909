#[cmdbus::command(domain = "payments", max_attempts = 0)]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
