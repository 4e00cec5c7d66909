#[cmdbus::command(domain = "payments")]
struct Debit<T> {
    amount: T,
}

fn main() {}
