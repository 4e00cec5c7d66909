use cmdbus::{HandlerError, command, handler};

#[command(domain = "payments")]
struct DebitAccount {}

struct Service;

impl Service {
    #[handler]
    async fn debit(&self, _cmd: DebitAccount) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
