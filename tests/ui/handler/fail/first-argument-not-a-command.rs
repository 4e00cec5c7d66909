use cmdbus::{HandlerContext, HandlerError, handler};

struct DebitAccount {}

#[handler]
async fn debit(_cmd: DebitAccount, _ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {}
