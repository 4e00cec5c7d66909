struct DebitAccount {
    amount_cents: i64,
}

async fn send(bus: cmdbus::testing::MemoryBus) {
    let _ = bus.send(DebitAccount { amount_cents: 100 }).await;
}

fn main() {}
