#[cmdbus::command(domain = "payments", backoff = ["10s", "soon", 5])]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
