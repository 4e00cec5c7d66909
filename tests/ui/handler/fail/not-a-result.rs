use cmdbus::{command, handler};

#[command(domain = "payments", reply = u64)]
struct DebitAccount {}

#[handler]
async fn debit(_cmd: DebitAccount) -> u64 {
    1
}

fn main() {}
