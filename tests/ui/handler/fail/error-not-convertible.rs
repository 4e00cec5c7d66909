use cmdbus::{command, handler};

#[command(domain = "payments")]
struct DebitAccount {}

struct NotAnError;

#[handler]
async fn debit(_cmd: DebitAccount) -> Result<(), NotAnError> {
    Ok(())
}

fn main() {}
