//! Textbook RSA: the worked example from the issue and the error cases.

use confianza_pki::textbook::{self, TextbookError};

#[test]
fn worked_example_key() {
    let key = textbook::keygen(29, 31, 47).expect("valid key");
    assert_eq!(key.n, 899);
    assert_eq!(key.phi, 840);
    assert_eq!(key.d, 143);
    assert_eq!(47 * 143 % 840, 1);
    let text = textbook::render_keygen(&key);
    assert!(
        text.contains("φ(n) = (p − 1)(q − 1) = 28 × 30 = 840"),
        "{text}"
    );
    assert!(text.contains("d = 143"), "{text}");
    // Every Euclid row keeps r = s·φ + t·e.
    for row in &key.euclid {
        assert_eq!(
            i128::from(row.r),
            row.s * 840 + row.t * 47,
            "row {row:?} breaks the invariant"
        );
    }
}

#[test]
fn worked_example_certify_and_verify() {
    // 611^143 mod 899 = 530 (the certificate), and 530^47 mod 899 = 611 (the check).
    let cert = textbook::certify(143, 899, 611).expect("certify");
    assert_eq!(cert.result, 530);

    let v = textbook::verify(47, 899, 530, 611).expect("verify");
    assert_eq!(v.result, 611);
    assert!(v.authentic);
    // 47 = 101111b: powers 530^1, ^2, ^4, ^8, ^16, ^32.
    let powers: Vec<(u64, u64)> = v
        .steps
        .iter()
        .map(|s| (s.power_exponent, s.power))
        .collect();
    let mut expected = Vec::new();
    let mut p = 530u64;
    for i in 0..6 {
        if i > 0 {
            p = p * p % 899;
        }
        expected.push((1u64 << i, p));
    }
    assert_eq!(powers, expected);
    let bits: Vec<bool> = v.steps.iter().map(|s| s.bit).collect();
    assert_eq!(bits, [true, true, true, true, false, true]);
    // Running products, multiplied only where the bit is 1.
    let mut acc = 1u64;
    for s in &v.steps {
        if s.bit {
            acc = acc * s.power % 899;
        }
        assert_eq!(s.product, acc);
    }
    assert_eq!(acc, 611);

    let text = textbook::render_verification(&v);
    assert!(text.contains("47 = 101111b = 1 + 2 + 4 + 8 + 32"), "{text}");
    assert!(text.contains("530^32"), "{text}");
    assert!(text.contains("Result: 530^47 mod 899 = 611"), "{text}");
    assert!(text.contains("AUTHENTIC"), "{text}");
    assert!(!text.contains("NOT AUTHENTIC"), "{text}");
}

#[test]
fn wrong_key_or_certificate_is_not_authentic() {
    let v = textbook::verify(47, 899, 530, 612).expect("verify");
    assert!(!v.authentic);
    assert!(textbook::render_verification(&v).contains("NOT AUTHENTIC"));
    let v = textbook::verify(47, 899, 531, 611).expect("verify");
    assert!(!v.authentic);
    assert!(textbook::render_verification(&v).contains("NOT AUTHENTIC"));
}

#[test]
fn round_trip_every_key() {
    let key = textbook::keygen(29, 31, 47).expect("key");
    for m in 0..key.n {
        let c = textbook::certify(key.d, key.n, m).expect("certify").result;
        let v = textbook::verify(key.e, key.n, c, m).expect("verify");
        assert!(v.authentic, "m = {m}");
    }
}

#[test]
fn keygen_errors() {
    assert_eq!(
        textbook::keygen(28, 31, 47),
        Err(TextbookError::NotPrime(28))
    );
    assert_eq!(textbook::keygen(29, 1, 47), Err(TextbookError::NotPrime(1)));
    assert_eq!(textbook::keygen(29, 29, 3), Err(TextbookError::EqualPrimes));
    assert_eq!(
        textbook::keygen(29, 31, 3),
        Err(TextbookError::NotCoprime {
            e: 3,
            phi: 840,
            gcd: 3
        })
    );
    assert_eq!(
        textbook::keygen(29, 31, 840),
        Err(TextbookError::ExponentOutOfRange { e: 840, phi: 840 })
    );
    assert_eq!(
        textbook::keygen(29, 31, 1),
        Err(TextbookError::ExponentOutOfRange { e: 1, phi: 840 })
    );
    // Two primes near 2^63 overflow n.
    let big = 9_223_372_036_854_775_783; // largest prime below 2^63
    assert!(textbook::is_prime(big));
    assert_eq!(
        textbook::keygen(big, 4_294_967_311, 65537),
        Err(TextbookError::Overflow)
    );
}

#[test]
fn large_primes_work_without_overflow() {
    // n just below 2^64: products are computed in u128.
    let p = 4_294_967_291; // largest prime below 2^32
    let q = 4_294_967_279;
    let key = textbook::keygen(p, q, 65537).expect("key");
    let m = 123_456_789_012_345;
    let c = textbook::certify(key.d, key.n, m).expect("certify").result;
    assert!(
        textbook::verify(key.e, key.n, c, m)
            .expect("verify")
            .authentic
    );
}

#[test]
fn verify_errors() {
    assert_eq!(
        textbook::verify(47, 1, 0, 0),
        Err(TextbookError::ModulusTooSmall)
    );
    assert_eq!(
        textbook::verify(47, 899, 899, 611),
        Err(TextbookError::NotBelowModulus {
            name: "certificate",
            value: 899,
            n: 899
        })
    );
    assert_eq!(
        textbook::verify(47, 899, 530, 900),
        Err(TextbookError::NotBelowModulus {
            name: "claimed key",
            value: 900,
            n: 899
        })
    );
    assert_eq!(
        textbook::verify(0, 899, 530, 611),
        Err(TextbookError::ZeroExponent)
    );
    assert!(textbook::certify(143, 899, 899).is_err());
}

#[test]
fn primality() {
    let small: Vec<u64> = (0..60).filter(|&n| textbook::is_prime(n)).collect();
    assert_eq!(
        small,
        [
            2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59
        ]
    );
    // Carmichael numbers and a strong pseudoprime to several bases.
    for c in [561u64, 1105, 1729, 3_215_031_751, 3_825_123_056_546_413_051] {
        assert!(!textbook::is_prime(c), "{c}");
    }
    assert!(textbook::is_prime(18_446_744_073_709_551_557)); // largest u64 prime
}
