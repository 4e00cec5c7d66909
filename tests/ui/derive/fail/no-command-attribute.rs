use cmdbus::Command;

#[derive(Command)]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
