//! Textbook RSA certificates, for teaching.
//!
//! A "certificate" here is the classroom one: the CA's private exponent `d` applied to the
//! user's key `m`, giving `c = m^d mod n`; anyone holding the CA's public key `(e, n)` checks it by
//! computing `c^e mod n` and comparing the result with the claimed key. There is no hashing and
//! no padding, so this is **not** secure — it exists to show the arithmetic step by step.
//!
//! Every quantity is a `u64`; products are computed in `u128`, so nothing overflows, and every
//! invalid input is a typed error (never a panic).
//!
//! ```
//! use confianza_pki::textbook;
//!
//! // The CA's key: p = 29, q = 31, e = 47.
//! let key = textbook::keygen(29, 31, 47).unwrap();
//! assert_eq!((key.n, key.phi, key.d), (899, 840, 143));
//!
//! // The CA certifies the user's key 611 ...
//! let cert = textbook::certify(key.d, key.n, 611).unwrap();
//! assert_eq!(cert.result, 530);
//!
//! // ... and anyone can check it with (e, n).
//! let check = textbook::verify(47, 899, 530, 611).unwrap();
//! assert!(check.authentic);
//! println!("{}", textbook::render_verification(&check));
//! ```

use core::fmt::{self, Write as _};

/// What went wrong with textbook RSA input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextbookError {
    /// `p` or `q` is not a prime number.
    #[error("{0} is not prime")]
    NotPrime(u64),
    /// `p` and `q` are the same prime (then `n = p²` and φ(n) ≠ (p−1)(q−1)).
    #[error("p and q must be different primes")]
    EqualPrimes,
    /// `n = p·q` does not fit in 64 bits.
    #[error("p·q does not fit in 64 bits")]
    Overflow,
    /// The public exponent is not in `1 < e < φ(n)`.
    #[error("e = {e} must satisfy 1 < e < φ(n) = {phi}")]
    ExponentOutOfRange {
        /// The public exponent given.
        e: u64,
        /// φ(n).
        phi: u64,
    },
    /// `gcd(e, φ(n)) ≠ 1`, so `e` has no inverse modulo φ(n).
    #[error("e = {e} is not coprime to φ(n) = {phi} (gcd = {gcd})")]
    NotCoprime {
        /// The public exponent given.
        e: u64,
        /// φ(n).
        phi: u64,
        /// gcd(e, φ(n)).
        gcd: u64,
    },
    /// The modulus is smaller than 2.
    #[error("the modulus n must be at least 2")]
    ModulusTooSmall,
    /// A message, certificate or key is not smaller than the modulus.
    #[error("{name} = {value} must be smaller than n = {n}")]
    NotBelowModulus {
        /// Which value (`"certificate"`, `"claimed key"`, `"key"`).
        name: &'static str,
        /// The value given.
        value: u64,
        /// The modulus.
        n: u64,
    },
    /// The exponent is zero.
    #[error("the exponent must be positive")]
    ZeroExponent,
}

/// One bit of the exponent in a left-to-right reading of square-and-multiply, written the way it
/// is taught: the powers `base^(2^i) mod n` by repeated squaring, and the running product of those
/// powers whose bit is 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Bit position `i` (0 is the least significant bit).
    pub bit_index: u32,
    /// Whether bit `i` of the exponent is 1.
    pub bit: bool,
    /// `2^i`, the exponent of this power.
    pub power_exponent: u64,
    /// `base^(2^i) mod n` (the previous power squared, mod n).
    pub power: u64,
    /// The running product after this step: the product of the powers whose bit is 1, mod n.
    pub product: u64,
}

/// A modular exponentiation `base^exponent mod modulus`, with its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModPow {
    /// The base.
    pub base: u64,
    /// The exponent.
    pub exponent: u64,
    /// The modulus.
    pub modulus: u64,
    /// One step per bit of the exponent, least significant first.
    pub steps: Vec<Step>,
    /// `base^exponent mod modulus`.
    pub result: u64,
}

/// Computes `base^exponent mod modulus` by square-and-multiply, recording each step.
pub fn mod_pow(base: u64, exponent: u64, modulus: u64) -> Result<ModPow, TextbookError> {
    if modulus < 2 {
        return Err(TextbookError::ModulusTooSmall);
    }
    if exponent == 0 {
        return Err(TextbookError::ZeroExponent);
    }
    let m = u128::from(modulus);
    let mut power = u128::from(base) % m;
    let mut product: u128 = 1;
    let mut steps = Vec::new();
    let bits = u64::BITS - exponent.leading_zeros();
    for i in 0..bits {
        if i > 0 {
            power = power * power % m;
        }
        let bit = (exponent >> i) & 1 == 1;
        if bit {
            product = product * power % m;
        }
        steps.push(Step {
            bit_index: i,
            bit,
            power_exponent: 1u64 << i,
            power: narrow(power),
            product: narrow(product),
        });
    }
    Ok(ModPow {
        base,
        exponent,
        modulus,
        steps,
        result: narrow(product),
    })
}

/// Values reduced modulo a `u64` modulus always fit in a `u64`.
fn narrow(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The outcome of checking a textbook certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The CA's public exponent.
    pub e: u64,
    /// The CA's modulus.
    pub n: u64,
    /// The certificate `c`.
    pub certificate: u64,
    /// The key the certificate is claimed to certify.
    pub claimed: u64,
    /// The square-and-multiply steps of `c^e mod n`.
    pub steps: Vec<Step>,
    /// `c^e mod n`.
    pub result: u64,
    /// Whether `result == claimed`.
    pub authentic: bool,
}

/// Checks the textbook certificate `cert` for the key `claimed` with the CA key `(e, n)`:
/// authentic when `cert^e mod n == claimed`.
pub fn verify(e: u64, n: u64, cert: u64, claimed: u64) -> Result<Verification, TextbookError> {
    if n < 2 {
        return Err(TextbookError::ModulusTooSmall);
    }
    below(n, "certificate", cert)?;
    below(n, "claimed key", claimed)?;
    let pow = mod_pow(cert, e, n)?;
    Ok(Verification {
        e,
        n,
        certificate: cert,
        claimed,
        authentic: pow.result == claimed,
        result: pow.result,
        steps: pow.steps,
    })
}

/// A textbook certificate `c = m^d mod n` and how it was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certification {
    /// The computation `m^d mod n`; `result` is the certificate.
    pub computation: ModPow,
    /// The certificate `c`.
    pub result: u64,
}

/// Certifies the key `m` with the CA's private exponent: `c = m^d mod n`.
pub fn certify(d: u64, n: u64, m: u64) -> Result<Certification, TextbookError> {
    if n < 2 {
        return Err(TextbookError::ModulusTooSmall);
    }
    below(n, "key", m)?;
    let computation = mod_pow(m, d, n)?;
    Ok(Certification {
        result: computation.result,
        computation,
    })
}

fn below(n: u64, name: &'static str, value: u64) -> Result<(), TextbookError> {
    if value >= n {
        return Err(TextbookError::NotBelowModulus { name, value, n });
    }
    Ok(())
}

/// One row of the extended Euclidean algorithm on `(φ(n), e)`.
///
/// Rows keep the invariant `r = s·φ(n) + t·e`; the row where `r` reaches 1 gives `d = t mod φ(n)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EuclidRow {
    /// The quotient that produced this row from the two before it (`None` for the first two rows).
    pub quotient: Option<u64>,
    /// The remainder.
    pub r: u64,
    /// Coefficient of φ(n).
    pub s: i128,
    /// Coefficient of e.
    pub t: i128,
}

/// A textbook RSA key pair and how it was derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// First prime.
    pub p: u64,
    /// Second prime.
    pub q: u64,
    /// `n = p·q`.
    pub n: u64,
    /// `φ(n) = (p−1)(q−1)`.
    pub phi: u64,
    /// Public exponent.
    pub e: u64,
    /// Private exponent, `e·d ≡ 1 (mod φ(n))`.
    pub d: u64,
    /// The extended Euclid rows that found `d`.
    pub euclid: Vec<EuclidRow>,
}

/// Builds a textbook RSA key from two primes and a public exponent.
pub fn keygen(p: u64, q: u64, e: u64) -> Result<KeyPair, TextbookError> {
    for x in [p, q] {
        if !is_prime(x) {
            return Err(TextbookError::NotPrime(x));
        }
    }
    if p == q {
        return Err(TextbookError::EqualPrimes);
    }
    let n = p.checked_mul(q).ok_or(TextbookError::Overflow)?;
    // p, q ≥ 2, so the subtractions cannot underflow and the product is below n.
    let phi = (p - 1) * (q - 1);
    if e <= 1 || e >= phi {
        return Err(TextbookError::ExponentOutOfRange { e, phi });
    }
    let euclid = extended_euclid(phi, e);
    let last = euclid.last().cloned().unwrap_or(EuclidRow {
        quotient: None,
        r: phi,
        s: 1,
        t: 0,
    });
    if last.r != 1 {
        return Err(TextbookError::NotCoprime {
            e,
            phi,
            gcd: last.r,
        });
    }
    let d = narrow(last.t.rem_euclid(i128::from(phi)).unsigned_abs());
    Ok(KeyPair {
        p,
        q,
        n,
        phi,
        e,
        d,
        euclid,
    })
}

/// Runs the extended Euclidean algorithm on `(a, b)` until the remainder is the gcd.
fn extended_euclid(a: u64, b: u64) -> Vec<EuclidRow> {
    let mut rows = vec![
        EuclidRow {
            quotient: None,
            r: a,
            s: 1,
            t: 0,
        },
        EuclidRow {
            quotient: None,
            r: b,
            s: 0,
            t: 1,
        },
    ];
    loop {
        let len = rows.len();
        let (prev, cur) = match (rows.get(len.wrapping_sub(2)), rows.last()) {
            (Some(p), Some(c)) => (p.clone(), c.clone()),
            _ => break,
        };
        if cur.r == 0 {
            // The gcd is the row before the zero remainder; the zero row is not shown.
            rows.pop();
            break;
        }
        let quotient = prev.r / cur.r;
        let q = i128::from(quotient);
        rows.push(EuclidRow {
            quotient: Some(quotient),
            r: prev.r % cur.r,
            s: prev.s - q * cur.s,
            t: prev.t - q * cur.t,
        });
        if prev.r % cur.r == 1 {
            break;
        }
    }
    rows
}

/// Deterministic Miller–Rabin for 64-bit integers (these bases are exact below 2^64).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for p in BASES {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let mut d = n - 1;
    let mut s = 0;
    while d.is_multiple_of(2) {
        d /= 2;
        s += 1;
    }
    let m = u128::from(n);
    'bases: for a in BASES {
        let mut x = pow_mod_u128(u128::from(a), d, m);
        if x == 1 || x == m - 1 {
            continue;
        }
        for _ in 1..s {
            x = x * x % m;
            if x == m - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

fn pow_mod_u128(mut base: u128, mut exp: u64, m: u128) -> u128 {
    let mut acc = 1u128;
    base %= m;
    while exp > 0 {
        if exp & 1 == 1 {
            acc = acc * base % m;
        }
        base = base * base % m;
        exp >>= 1;
    }
    acc
}

/// Writes the square-and-multiply table for `pow` (shared by verification and certification).
fn write_mod_pow(out: &mut String, pow: &ModPow) -> fmt::Result {
    let ModPow {
        base,
        exponent,
        modulus,
        ..
    } = pow;
    writeln!(
        out,
        "Compute {base}^{exponent} mod {modulus} by square-and-multiply."
    )?;
    let bits: String = pow
        .steps
        .iter()
        .rev()
        .map(|s| if s.bit { '1' } else { '0' })
        .collect();
    let powers: Vec<String> = pow
        .steps
        .iter()
        .filter(|s| s.bit)
        .map(|s| s.power_exponent.to_string())
        .collect();
    writeln!(
        out,
        "Exponent in binary: {exponent} = {bits}b = {}",
        powers.join(" + ")
    )?;
    writeln!(out)?;
    // Build the rows first so the columns can be aligned.
    let mut rows = Vec::with_capacity(pow.steps.len());
    let mut previous_power: Option<u64> = None;
    let mut previous_product: u64 = 1;
    for step in &pow.steps {
        let Step {
            bit_index,
            bit,
            power_exponent,
            power,
            product,
        } = step;
        let square = match previous_power {
            None => format!("{base}^{power_exponent} = {power}"),
            Some(prev) => {
                format!("{base}^{power_exponent} = {prev} × {prev} mod {modulus} = {power}")
            }
        };
        let running = if *bit {
            format!("{previous_product} × {power} mod {modulus} = {product}")
        } else {
            format!("bit is 0, keep {product}")
        };
        rows.push((*bit_index, u8::from(*bit), square, running));
        previous_power = Some(*power);
        previous_product = *product;
    }
    let square_header = format!("{base}^(2^i) mod {modulus}");
    let width = rows
        .iter()
        .map(|r| r.2.chars().count())
        .chain([square_header.chars().count()])
        .max()
        .unwrap_or(0);
    writeln!(out, "    i  bit  {square_header:<width$}  running product")?;
    for (i, bit, square, running) in &rows {
        writeln!(out, "  {i:>3}  {bit:>3}  {square:<width$}  {running}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Result: {base}^{exponent} mod {modulus} = {}",
        pow.result
    )
}

/// The step-by-step text of a verification, as `confianza textbook verify` prints it.
pub fn render_verification(v: &Verification) -> String {
    let mut out = String::new();
    let _ = write_verification(&mut out, v);
    out
}

fn write_verification(out: &mut String, v: &Verification) -> fmt::Result {
    writeln!(out, "Textbook RSA certificate check")?;
    writeln!(out, "CA public key: e = {}, n = {}", v.e, v.n)?;
    writeln!(
        out,
        "Certificate c = {}, claimed key m = {}",
        v.certificate, v.claimed
    )?;
    writeln!(out, "The certificate is authentic if c^e mod n = m.")?;
    writeln!(out)?;
    let pow = ModPow {
        base: v.certificate,
        exponent: v.e,
        modulus: v.n,
        steps: v.steps.clone(),
        result: v.result,
    };
    write_mod_pow(out, &pow)?;
    if v.authentic {
        writeln!(
            out,
            "{} = {}: the key is AUTHENTIC (the certificate was made with the CA's private key).",
            v.result, v.claimed
        )
    } else {
        writeln!(
            out,
            "{} ≠ {}: the key is NOT AUTHENTIC (this certificate does not certify this key).",
            v.result, v.claimed
        )
    }
}

/// The step-by-step text of a certification, as `confianza textbook certify` prints it.
pub fn render_certification(c: &Certification) -> String {
    let mut out = String::new();
    let _ = write_certification(&mut out, c);
    out
}

fn write_certification(out: &mut String, c: &Certification) -> fmt::Result {
    let pow = &c.computation;
    writeln!(out, "Textbook RSA certification")?;
    writeln!(
        out,
        "CA private key: d = {}, n = {}; key to certify m = {}",
        pow.exponent, pow.modulus, pow.base
    )?;
    writeln!(out, "The certificate is c = m^d mod n.")?;
    writeln!(out)?;
    write_mod_pow(out, pow)?;
    writeln!(out, "Certificate: c = {}", c.result)
}

/// The step-by-step text of a key generation, as `confianza textbook keygen` prints it.
pub fn render_keygen(k: &KeyPair) -> String {
    let mut out = String::new();
    let _ = write_keygen(&mut out, k);
    out
}

fn write_keygen(out: &mut String, k: &KeyPair) -> fmt::Result {
    let KeyPair {
        p, q, n, phi, e, d, ..
    } = k;
    writeln!(out, "Textbook RSA key generation")?;
    writeln!(out, "p = {p}, q = {q} (both prime)")?;
    writeln!(out, "n = p × q = {p} × {q} = {n}")?;
    writeln!(out, "φ(n) = (p − 1)(q − 1) = {} × {} = {phi}", p - 1, q - 1)?;
    writeln!(out, "e = {e}, gcd(e, φ(n)) = 1")?;
    writeln!(out)?;
    writeln!(
        out,
        "Extended Euclid on (φ(n), e) = ({phi}, {e}); each row keeps r = s × {phi} + t × {e}:"
    )?;
    writeln!(
        out,
        "  {:>6} | {:>20} | {:>12} | {:>12}",
        "q", "r", "s", "t"
    )?;
    for row in &k.euclid {
        let quotient = row.quotient.map_or_else(String::new, |q| q.to_string());
        writeln!(
            out,
            "  {quotient:>6} | {:>20} | {:>12} | {:>12}",
            row.r, row.s, row.t
        )?;
    }
    if let Some(last) = k.euclid.last() {
        writeln!(
            out,
            "r = 1, so {e} × {} ≡ 1 (mod {phi}); d = {} mod {phi} = {d}",
            last.t, last.t
        )?;
    }
    let check = u128::from(*e) * u128::from(*d) % u128::from(*phi);
    writeln!(out, "Check: {e} × {d} mod {phi} = {check}")?;
    writeln!(out)?;
    writeln!(out, "Public key (e, n) = ({e}, {n})")?;
    writeln!(out, "Private key (d, n) = ({d}, {n})")
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_verification(self))
    }
}

impl fmt::Display for Certification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_certification(self))
    }
}

impl fmt::Display for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_keygen(self))
    }
}
