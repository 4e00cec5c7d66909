// Every mistake is reported in one build, not one per build.
#[cmdbus::command(domain = "Payments", name = "", max_attempts = 0, backoff = [])]
struct DebitAccount {
    amount_cents: i64,
}

fn main() {}
