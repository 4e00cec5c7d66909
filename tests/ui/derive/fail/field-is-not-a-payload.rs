use cmdbus::Command;

// Forgot #[derive(cmdbus::Payload)].
struct Address {
    city: String,
}

#[derive(Command)]
#[command(domain = "shipping")]
struct Ship {
    to: Address,
}

fn main() {}
