use cmdbus::Command;

#[derive(Command)]
#[command(domain = "payments")]
struct Debit<T> {
    amount: T,
}

fn main() {}
