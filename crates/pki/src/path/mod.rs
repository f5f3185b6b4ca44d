//! RFC 5280 path validation (in progress).
