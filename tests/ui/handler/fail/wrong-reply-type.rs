use cmdbus::{HandlerError, command, handler};

#[command(domain = "payments", reply = u64)]
struct DebitAccount {}

#[handler]
async fn debit(_cmd: DebitAccount) -> Result<String, HandlerError> {
    Ok(String::new())
}

fn main() {}
