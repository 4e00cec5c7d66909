use cmdbus::{HandlerError, handler};

#[handler]
async fn debit() -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
