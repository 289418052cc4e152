//! Support for the integration tests in `it/` (the crate itself is empty).
