//! Named limits for every quantity a requester, an RA officer or a stored file controls.
//!
//! Each limit says why it has its value; the tests at the bottom (and in the modules that enforce
//! them) check the behaviour at N and N + 1.

/// Largest PKCS#10 request accepted, DER or PEM (bytes). A CSR with an RSA-4096 key, a long
/// subject and a few SANs is about 2 KiB; 16 KiB leaves room without letting a requester make the
/// parser chew megabytes.
pub const MAX_CSR_BYTES: usize = 16 * 1024;

/// Largest RSA modulus accepted in a request (bits). Verification cost grows with the square of
/// the size; 8192 bits covers every deployed key.
pub const MAX_RSA_BITS: usize = 8192;

/// Smallest RSA modulus accepted in a request (bits): NIST SP 800-131A and the CA/B Forum
/// baseline forbid anything under 2048.
pub const MIN_RSA_BITS: usize = 2048;

/// Most subjectAltName entries in one certificate. A TLS server on a few names needs a handful;
/// 100 keeps a single certificate small enough for every client.
pub const MAX_SAN_ENTRIES: usize = 100;

/// Longest DNS name, RFC 1035 section 2.3.4 (octets, without the trailing dot).
pub const MAX_DNS_NAME_LEN: usize = 253;

/// Longest user address (`local@domain`, RFC 5321 section 4.5.3.1.3: 256 octets for a path,
/// minus the angle brackets).
pub const MAX_ADDRESS_LEN: usize = 254;

/// Longest single text attribute in a subject (e.g. commonName), RFC 5280 appendix A `ub-*`
/// upper bounds are 64 for commonName; organisation names go up to 64 as well.
pub const MAX_NAME_ATTRIBUTE_LEN: usize = 64;

/// Smallest Argon2id memory cost a sealed key file may name (KiB): the Argon2 minimum of
/// 8 KiB per lane. Sealing always uses the caller's parameters; this only bounds `open`.
pub const MIN_SEAL_M_COST_KIB: u32 = 8;

/// Largest Argon2id memory cost a sealed key file may name (KiB): 4 GiB. A tampered file could
/// otherwise ask `open` for all of the machine's memory before the tag check fails.
pub const MAX_SEAL_M_COST_KIB: u32 = 4 * 1024 * 1024;

/// Largest Argon2id time cost (passes) a sealed key file may name: 64 passes of 4 GiB is
/// already minutes; a tampered file must not make `open` run for hours.
pub const MAX_SEAL_T_COST: u32 = 64;

/// Largest Argon2id parallelism a sealed key file may name.
pub const MAX_SEAL_P_COST: u32 = 16;

/// Largest sealed key file (bytes). An RSA-8192 PKCS#8 key is under 5 KiB.
pub const MAX_SEALED_KEY_BYTES: usize = 16 * 1024;

/// Longest enrollment code accepted from a user (characters). Codes we generate are 24
/// characters with dashes; anything much longer is not ours and is rejected before hashing.
pub const MAX_ENROLLMENT_CODE_LEN: usize = 64;

/// Longest free-text reason or comment an RA officer or holder can attach to a step.
pub const MAX_COMMENT_LEN: usize = 1024;

/// Longest RA proof-of-possession challenge (bytes) accepted for an identity request.
pub const MAX_CHALLENGE_LEN: usize = 256;

/// Shortest RA proof-of-possession challenge (bytes): 128 bits of freshness.
pub const MIN_CHALLENGE_LEN: usize = 16;

/// Longest validity the CA will put into a leaf certificate (days). Profiles default to one
/// year; two years plus a little slack is the most any profile may ask for.
pub const MAX_LEAF_VALIDITY_DAYS: u32 = 825;

/// Serial numbers: bytes of randomness (RFC 5280 requires at most 20 octets; the CA/B Forum at
/// least 64 bits of entropy). 16 bytes = 127 bits after clearing the sign bit, 17 octets encoded
/// at most.
pub const SERIAL_RANDOM_BYTES: usize = 16;

/// Most entries in one CRL. 10 million entries are about 400 MB of DER, past what any client
/// will download; partition instead.
pub const MAX_CRL_ENTRIES: usize = 10_000_000;

// The limits must stay consistent with each other and with RFC 5280 4.1.2.2 (at most 20
// octets of serial, plus a possible leading zero; at least 64 bits of entropy).
const _: () = {
    assert!(MIN_RSA_BITS < MAX_RSA_BITS);
    assert!(MIN_SEAL_M_COST_KIB < MAX_SEAL_M_COST_KIB);
    assert!(MIN_CHALLENGE_LEN < MAX_CHALLENGE_LEN);
    assert!(SERIAL_RANDOM_BYTES < 20);
    assert!(SERIAL_RANDOM_BYTES * 8 > 64);
};
