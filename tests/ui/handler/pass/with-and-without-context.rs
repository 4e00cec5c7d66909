use cmdbus::{HandlerContext, HandlerError, command, handler};

#[command(domain = "payments", reply = u32)]
struct DebitAccount {
    amount_cents: i64,
}

#[command(domain = "payments")]
struct CloseAccount {}

#[derive(Debug, thiserror::Error)]
#[error("partner down")]
struct PartnerDown;

#[handler]
async fn debit(cmd: DebitAccount, ctx: &mut HandlerContext) -> Result<u32, HandlerError> {
    assert!(cmd.amount_cents > 0);
    Ok(ctx.attempt())
}

// Any std::error::Error converts; the worker's classifier decides its kind.
#[handler]
async fn close(_cmd: CloseAccount) -> Result<(), PartnerDown> {
    Err(PartnerDown)
}

fn main() {
    let names: Vec<String> = cmdbus::Registry::from_inventory()
        .unwrap()
        .registrations()
        .filter(|r| r.domain() == "payments")
        .map(|r| r.describe())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].contains("::close"), "{names:?}");
    assert!(names[1].contains("::debit"), "{names:?}");
}
