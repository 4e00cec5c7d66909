//! The transport conformance suite on PostgreSQL, each case in a fresh schema.

cmdbus::conformance_suite!(|| async { cmdbus_tests::pg_transport().await });
