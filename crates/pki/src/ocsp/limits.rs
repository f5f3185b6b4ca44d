//! Limits on what an OCSP requester or responder controls.

/// Largest DER `OCSPRequest` the responder parses (bytes). A request for one certificate with a
/// nonce is about 100 bytes; [`MAX_REQUESTS`] SHA-256 entries plus extensions fit in well under
/// 8 KiB. A signed request with its certificates could be larger, but this responder does not
/// need request signatures.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Most certificates asked about in one `OCSPRequest`. Clients ask about one, or about a chain;
/// each entry costs a status lookup, so a requester must not be able to ask for thousands.
pub const MAX_REQUESTS: usize = 32;

/// Longest nonce accepted, in octets (RFC 8954 §2.1: responders may reject nonces longer than
/// 32 octets, and 32 is the recommended length).
pub const MAX_NONCE_LEN: usize = 32;

/// Largest DER `OCSPResponse` a client parses (bytes). A response carries a few single responses
/// and the responder's certificate (an RSA-8192 certificate is under 2 KiB); 64 KiB is ample.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Most single responses and certificates a client reads from one response.
pub const MAX_RESPONSE_ENTRIES: usize = 64;
