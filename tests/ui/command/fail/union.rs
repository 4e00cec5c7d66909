#[cmdbus::command(domain = "payments")]
union Amount {
    cents: i64,
    units: u64,
}

fn main() {}
