#[cmdbus::command(domain = "pay\"; drop table commands; --")]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
