//! Shared fixtures for cmdbus's own integration tests.
