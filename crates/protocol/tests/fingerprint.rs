//! Safety numbers against libsignal's known answers (WIRE.md §12), plus negative cases.

use confianza_protocol::fingerprint::{
    CompareError, DEFAULT_FINGERPRINT_ITERATIONS, Fingerprint, Iterations,
    MAX_SCANNABLE_FINGERPRINT_LEN, Party, ScannableVersion,
};
use proptest::prelude::*;

const ALICE_KEY: &str = "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868";
const BOB_KEY: &str = "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b";
const ALICE_ID: &[u8] = b"+14152222222";
const BOB_ID: &[u8] = b"+14153333333";
const DISPLAYABLE: &str = "300354477692869396892869876765458257569162576843440918079131";
const ALICE_SCANNABLE_V2: &str = "080212220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d";

fn key(hex_str: &str) -> [u8; 33] {
    let bytes = hex::decode(hex_str).expect("test key hex");
    bytes.try_into().expect("33-byte key")
}

fn pair(version: ScannableVersion) -> (Fingerprint, Fingerprint) {
    let (a, b) = (key(ALICE_KEY), key(BOB_KEY));
    let alice = Party {
        stable_id: ALICE_ID,
        identity_key: &a,
    };
    let bob = Party {
        stable_id: BOB_ID,
        identity_key: &b,
    };
    let it = Iterations::DEFAULT;
    (
        Fingerprint::new(version, it, alice, bob),
        Fingerprint::new(version, it, bob, alice),
    )
}

#[test]
fn default_iterations_is_5200() {
    assert_eq!(DEFAULT_FINGERPRINT_ITERATIONS, 5200);
    assert_eq!(Iterations::default().get(), 5200);
}

#[test]
fn known_answer_displayable() {
    for version in [ScannableVersion::V1, ScannableVersion::V2] {
        let (on_alice, on_bob) = pair(version);
        assert_eq!(on_alice.displayable().to_string(), DISPLAYABLE);
        assert_eq!(on_bob.displayable().to_string(), DISPLAYABLE);
        assert!(on_alice.displayable().matches(DISPLAYABLE));
    }
}

#[test]
fn known_answer_scannable_v2_and_v1() {
    let (on_alice, _) = pair(ScannableVersion::V2);
    assert_eq!(
        hex::encode(on_alice.scannable().to_bytes()),
        ALICE_SCANNABLE_V2
    );
    let (on_alice, _) = pair(ScannableVersion::V1);
    let v1 = format!("0801{}", &ALICE_SCANNABLE_V2[4..]);
    assert_eq!(hex::encode(on_alice.scannable().to_bytes()), v1);
}

#[test]
fn scannable_cross_compare() {
    for version in [ScannableVersion::V1, ScannableVersion::V2] {
        let (on_alice, on_bob) = pair(version);
        assert_eq!(
            on_alice.scannable().compare(&on_bob.scannable().to_bytes()),
            Ok(true)
        );
        assert_eq!(
            on_bob.scannable().compare(&on_alice.scannable().to_bytes()),
            Ok(true)
        );
        // A phone scanning its own payload sees local/remote the wrong way round.
        assert_eq!(
            on_alice
                .scannable()
                .compare(&on_alice.scannable().to_bytes()),
            Ok(false)
        );
    }
}

#[test]
fn scannable_version_mismatch_is_an_error() {
    let (on_alice_v2, _) = pair(ScannableVersion::V2);
    let (_, on_bob_v1) = pair(ScannableVersion::V1);
    assert_eq!(
        on_alice_v2
            .scannable()
            .compare(&on_bob_v1.scannable().to_bytes()),
        Err(CompareError::VersionMismatch { theirs: 1, ours: 2 })
    );
    // A missing version reads as 0.
    let (_, on_bob) = pair(ScannableVersion::V2);
    let no_version = &on_bob.scannable().to_bytes()[2..];
    assert_eq!(
        on_alice_v2.scannable().compare(no_version),
        Err(CompareError::VersionMismatch { theirs: 0, ours: 2 })
    );
}

#[test]
fn scannable_with_another_key_does_not_match() {
    let (a, mallory_key) = (key(ALICE_KEY), [0x05; 33]);
    let b = key(BOB_KEY);
    let alice = Party {
        stable_id: ALICE_ID,
        identity_key: &a,
    };
    let bob = Party {
        stable_id: BOB_ID,
        identity_key: &b,
    };
    let mallory_as_bob = Party {
        stable_id: BOB_ID,
        identity_key: &mallory_key,
    };
    let it = Iterations::new(2).expect("in range");
    let on_alice = Fingerprint::new(ScannableVersion::V2, it, alice, mallory_as_bob);
    let on_bob = Fingerprint::new(ScannableVersion::V2, it, bob, alice);
    assert_eq!(
        on_alice.scannable().compare(&on_bob.scannable().to_bytes()),
        Ok(false)
    );
    assert_ne!(
        on_alice.displayable().to_string(),
        on_bob.displayable().to_string()
    );
    assert!(
        !on_alice
            .displayable()
            .matches(&on_bob.displayable().to_string())
    );
}

#[test]
fn scannable_malformed_inputs() {
    let (on_alice, on_bob) = pair(ScannableVersion::V2);
    let good = on_bob.scannable().to_bytes();
    // Truncated: the protobuf no longer parses.
    for cut in [1, 3, 10, good.len() - 1] {
        assert_eq!(
            on_alice.scannable().compare(&good[..cut]),
            Err(CompareError::Malformed),
            "cut at {cut}"
        );
    }
    // Version only: both halves missing.
    assert_eq!(
        on_alice.scannable().compare(&[0x08, 0x02]),
        Err(CompareError::Malformed)
    );
    // Short half: parses, but does not match.
    let short_half = {
        let mut v = vec![0x08, 0x02, 0x12, 0x21, 0x0a, 0x1f];
        v.extend_from_slice(&good[6..6 + 31]);
        v.extend_from_slice(&good[38..]);
        v
    };
    assert_eq!(on_alice.scannable().compare(&short_half), Ok(false));
}

#[test]
fn scannable_length_limit_n_and_n_plus_one() {
    let (on_alice, on_bob) = pair(ScannableVersion::V2);
    let good = on_bob.scannable().to_bytes();
    // Pad with an unknown bytes field (tag 15, wire type 2) up to exactly N bytes.
    let pad_to = |total: usize| {
        let mut v = good.clone();
        // field key 0x7a, then a 2-byte varint length
        let pad_len = total - v.len() - 3;
        v.push(0x7a);
        v.push(0x80 | (pad_len & 0x7f) as u8);
        v.push((pad_len >> 7) as u8);
        v.resize(total, 0);
        v
    };
    let at_limit = pad_to(MAX_SCANNABLE_FINGERPRINT_LEN);
    assert_eq!(at_limit.len(), MAX_SCANNABLE_FINGERPRINT_LEN);
    assert_eq!(on_alice.scannable().compare(&at_limit), Ok(true));
    let over = pad_to(MAX_SCANNABLE_FINGERPRINT_LEN + 1);
    assert_eq!(
        on_alice.scannable().compare(&over),
        Err(CompareError::TooLong(MAX_SCANNABLE_FINGERPRINT_LEN + 1))
    );
}

#[test]
fn iterations_limits_n_and_n_plus_one() {
    assert!(Iterations::new(0).is_err());
    assert!(Iterations::new(1).is_err());
    assert_eq!(Iterations::new(2).map(Iterations::get), Ok(2));
    assert_eq!(
        Iterations::try_from(1_000_000).map(Iterations::get),
        Ok(1_000_000)
    );
    assert!(Iterations::new(1_000_001).is_err());
}

#[test]
fn iteration_count_changes_the_number() {
    let (a, b) = (key(ALICE_KEY), key(BOB_KEY));
    let alice = Party {
        stable_id: ALICE_ID,
        identity_key: &a,
    };
    let bob = Party {
        stable_id: BOB_ID,
        identity_key: &b,
    };
    let f = |n| {
        Fingerprint::new(
            ScannableVersion::V2,
            Iterations::new(n).expect("in range"),
            alice,
            bob,
        )
        .displayable()
        .to_string()
    };
    assert_ne!(f(5199), DISPLAYABLE);
    assert_ne!(f(5201), DISPLAYABLE);
    assert_eq!(f(5200), DISPLAYABLE);
}

#[test]
fn matches_ignores_spaces_and_rejects_other_lengths() {
    let (on_alice, _) = pair(ScannableVersion::V2);
    let spaced: String = DISPLAYABLE
        .as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).expect("digits"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(on_alice.displayable().matches(&spaced));
    assert!(!on_alice.displayable().matches(&DISPLAYABLE[..59]));
    assert!(!on_alice.displayable().matches(&format!("{DISPLAYABLE}1")));
    assert!(!on_alice.displayable().matches(""));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn both_sides_agree(
        a in proptest::array::uniform32(any::<u8>()),
        b in proptest::array::uniform32(any::<u8>()),
        id_a in proptest::collection::vec(any::<u8>(), 0..40),
        id_b in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut ka = [0x05u8; 33];
        ka[1..].copy_from_slice(&a);
        let mut kb = [0x05u8; 33];
        kb[1..].copy_from_slice(&b);
        let pa = Party { stable_id: &id_a, identity_key: &ka };
        let pb = Party { stable_id: &id_b, identity_key: &kb };
        let it = Iterations::new(2).expect("in range");
        let x = Fingerprint::new(ScannableVersion::V2, it, pa, pb);
        let y = Fingerprint::new(ScannableVersion::V2, it, pb, pa);
        prop_assert_eq!(x.displayable().to_string(), y.displayable().to_string());
        prop_assert_eq!(x.displayable().to_string().len(), 60);
        prop_assert_eq!(x.scannable().compare(&y.scannable().to_bytes()), Ok(true));
    }

    #[test]
    fn compare_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (on_alice, _) = pair_fast();
        let _ = on_alice.scannable().compare(&bytes);
    }
}

fn pair_fast() -> (Fingerprint, Fingerprint) {
    let (a, b) = (key(ALICE_KEY), key(BOB_KEY));
    let alice = Party {
        stable_id: ALICE_ID,
        identity_key: &a,
    };
    let bob = Party {
        stable_id: BOB_ID,
        identity_key: &b,
    };
    let it = Iterations::new(2).expect("in range");
    (
        Fingerprint::new(ScannableVersion::V2, it, alice, bob),
        Fingerprint::new(ScannableVersion::V2, it, bob, alice),
    )
}
