use cmdbus::{HandlerError, command, handler};

#[command(domain = "payments")]
struct DebitAccount {}

#[handler]
fn debit(_cmd: DebitAccount) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
