use cmdbus::{HandlerError, command, handler};

#[command(domain = "payments")]
struct DebitAccount {}

#[handler]
async fn debit(_cmd: DebitAccount, _ctx: String) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
