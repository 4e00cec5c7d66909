#[derive(cmdbus::Payload)]
union Amount {
    cents: i64,
    whole: f64,
}

fn main() {}
