//! The transport conformance suite on the in-memory transport.

cmdbus::conformance_suite!(|| async { cmdbus::testing::MemoryTransport::new() });
