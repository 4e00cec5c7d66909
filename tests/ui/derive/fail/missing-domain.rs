use cmdbus::Command;

#[derive(Command)]
#[command(reply = ())]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
