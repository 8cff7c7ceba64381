//! Shared helpers for Tern's benches. The end-to-end load bench lives in `benches/e2e/`.
