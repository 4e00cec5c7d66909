use cmdbus::Command;

#[derive(Command)]
#[command(domain = "payments")]
union Amount {
    cents: i64,
    whole: f64,
}

fn main() {}
