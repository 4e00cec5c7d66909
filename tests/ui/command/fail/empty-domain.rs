#[cmdbus::command(domain = "")]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
