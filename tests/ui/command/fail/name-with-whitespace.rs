#[cmdbus::command(domain = "payments", name = "Debit Account")]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
