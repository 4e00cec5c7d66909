async fn wait(bus: cmdbus::testing::MemoryBus) {
    let _ = bus.wait_reply::<String>(uuid::Uuid::nil(), std::time::Duration::from_secs(1)).await;
}

fn main() {}
