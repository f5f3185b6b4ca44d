//! Limits on the work one path validation may do. Every input here (intermediates, CRLs, the
//! certificates themselves) can come from a peer, so each quantity is bounded.

/// Most signature verifications one validation may perform while building paths (certificate
/// signatures only; CRL signatures are bounded by [`MAX_CRLS`]). A real chain needs 2 to 4;
/// x509-limbo's pathological cases (100 intermediates sharing a subject or a key, cycles) need
/// thousands without a bound. 100 also matches the budget rustls-webpki uses.
pub const MAX_SIGNATURE_CHECKS: usize = 100;

/// Most candidate issuers one validation may consider (name matches tried, whether or not their
/// signature is checked). Bounds the backtracking search where signatures are skipped early
/// (expired candidates, key-identifier mismatches).
pub const MAX_CANDIDATE_ISSUERS: usize = 1_000;

/// Default (and largest) number of intermediates between the end entity and the trust anchor,
/// counting self-issued intermediates once with the CA they re-key. The Web PKI uses at most 2
/// or 3; Confianza uses 1.
pub const MAX_CHAIN_DEPTH: usize = 8;

/// Most (name, constraint) comparisons the name-constraint check may do over one path. A sane
/// path compares a few names with a few constraints; limbo `pathological::nc-dos-*` have 2048 x
/// 2048 (about 4 million) and must be refused quickly. rustls-webpki uses a bound of the same
/// order.
pub const MAX_NAME_CONSTRAINT_COMPARISONS: usize = 1 << 16;

/// Most untrusted intermediates one validation will look at; the rest are ignored.
pub const MAX_INTERMEDIATES: usize = 256;

/// Most CRLs one validation will consider.
pub const MAX_CRLS: usize = 64;

/// Largest DER certificate or CRL the parsers accept (bytes). A certificate with an RSA-8192
/// key and a hundred names stays under 16 KiB; large CRLs (one entry is ~40 bytes) stay under
/// 4 MiB even with 100k entries.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// Largest DER CRL accepted (bytes); see [`MAX_CERTIFICATE_BYTES`].
pub const MAX_CRL_BYTES: usize = 4 * 1024 * 1024;

/// Most stapled OCSP responses one validation will consider (the rest are ignored). A server
/// staples one response per certificate of the path, so at most [`MAX_CHAIN_DEPTH`] + 1; each
/// considered response can cost a signature check per certificate.
pub const MAX_STAPLED_RESPONSES: usize = MAX_CHAIN_DEPTH + 1;
