use cmdbus::{Command, HandlerError, handler};

#[handler]
async fn debit<C: Command>(_cmd: C) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
