//! Call keys: message codec, per-direction SRTP master keys, RFC 3711 session key derivation.

use confianza_protocol::call::{
    CALL_KEY_MESSAGE_LEN, CallDirection, CallKeyDecodeError, CallKeyMessage, CallMasterSecret,
    CallRole, CallSrtpKeys, SrtpMasterKeys, SrtpSessionKeys,
};
use proptest::prelude::*;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

fn secret() -> CallMasterSecret {
    CallMasterSecret::from_bytes(core::array::from_fn(|i| i as u8))
}

const CALL_ID: u64 = 0x0102_0304_0506_0708;

#[test]
fn message_layout_known_answer() {
    let message = CallKeyMessage::new(CALL_ID, secret());
    let bytes = message.encode();
    let mut expected = h("010102030405060708");
    expected.extend(0u8..32);
    assert_eq!(bytes.len(), CALL_KEY_MESSAGE_LEN);
    assert_eq!(&bytes[..], &expected[..]);
    let back = CallKeyMessage::decode(&bytes[..]).expect("valid");
    assert_eq!(back.call_id(), CALL_ID);
    assert_eq!(back.secret().as_bytes(), secret().as_bytes());
}

#[test]
fn message_decode_errors() {
    let bytes = CallKeyMessage::new(CALL_ID, secret()).encode();
    for len in [0, 1, 9, 40] {
        assert_eq!(
            CallKeyMessage::decode(&bytes[..len]).err(),
            Some(CallKeyDecodeError::Length {
                expected: 41,
                got: len
            })
        );
    }
    let mut long = bytes.to_vec();
    long.push(0);
    assert_eq!(
        CallKeyMessage::decode(&long).err(),
        Some(CallKeyDecodeError::Length {
            expected: 41,
            got: 42
        })
    );
    for version in [0u8, 2, 0xff] {
        let mut other = *bytes;
        other[0] = version;
        assert_eq!(
            CallKeyMessage::decode(&other).err(),
            Some(CallKeyDecodeError::UnknownVersion(version))
        );
    }
}

/// Computed independently with Python `cryptography` (HKDF-SHA256, salt none, info = label ‖
/// call id big-endian, 30 bytes).
#[test]
fn master_key_derivation_known_answer() {
    let up = SrtpMasterKeys::derive(&secret(), CALL_ID, CallDirection::CallerToCallee);
    assert_eq!(up.key()[..], h("c9bee039299df53c884a8eec5c149135"));
    assert_eq!(up.salt()[..], h("7101b1cdbd462a2c20097bccb1a6"));
    let down = SrtpMasterKeys::derive(&secret(), CALL_ID, CallDirection::CalleeToCaller);
    assert_eq!(down.key()[..], h("5dcddf0da1c77122bb020935ec3dbb17"));
    assert_eq!(down.salt()[..], h("20da81c9aa2738eefc13d16df3d8"));
}

#[test]
fn roles_mirror_each_other() {
    let message = CallKeyMessage::new(CALL_ID, secret());
    let caller = CallSrtpKeys::derive(&message, CallRole::Caller);
    let callee = CallSrtpKeys::derive(&message, CallRole::Callee);
    assert!(caller.send.ct_eq(&callee.receive));
    assert!(caller.receive.ct_eq(&callee.send));
    assert!(!caller.send.ct_eq(&caller.receive));
}

/// RFC 3711 Appendix B.3 (key derivation test vectors).
#[test]
fn rfc3711_b3_session_keys() {
    let key: [u8; 16] = h("E1F97A0D3E018BE0D64FA32C06DE4139")
        .try_into()
        .expect("16");
    let salt: [u8; 14] = h("0EC675AD498AFEEBB6960B3AABE6").try_into().expect("14");
    let session = SrtpSessionKeys::derive_srtp(&SrtpMasterKeys::new(key, salt));
    assert_eq!(
        session.encryption_key()[..],
        h("C61E7A93744F39EE10734AFE3FF7A087")
    );
    assert_eq!(session.salt()[..], h("30CBBC08863D8C85D49DB34A9AE1"));
    // B.3 lists 94 bytes of label-1 keystream; HMAC-SHA1 uses its first 160 bits.
    assert_eq!(
        session.authentication_key()[..],
        h("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
    );
}

/// SRTCP labels 3, 4, 5 on the B.3 master key (computed with Python `cryptography` AES-CTR from
/// the §4.3 definition).
#[test]
fn srtcp_session_keys() {
    let key: [u8; 16] = h("E1F97A0D3E018BE0D64FA32C06DE4139")
        .try_into()
        .expect("16");
    let salt: [u8; 14] = h("0EC675AD498AFEEBB6960B3AABE6").try_into().expect("14");
    let session = SrtpSessionKeys::derive_srtcp(&SrtpMasterKeys::new(key, salt));
    assert_eq!(
        session.encryption_key()[..],
        h("4c1aa45a81f73d61c800bbb00fbb1eaa")
    );
    assert_eq!(
        session.authentication_key()[..],
        h("8d54534feb49ae8e7993a6bd0b844fc323a93dfd")
    );
    assert_eq!(session.salt()[..], h("9581c7ad87b3e530bf3e4454a8b3"));
}

proptest! {
    #[test]
    fn codec_round_trip(id in any::<u64>(), s in proptest::array::uniform32(any::<u8>())) {
        let message = CallKeyMessage::new(id, CallMasterSecret::from_bytes(s));
        let back = CallKeyMessage::decode(&message.encode()[..]).expect("round trip");
        prop_assert_eq!(back.call_id(), id);
        prop_assert_eq!(back.secret().as_bytes(), &s);
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let ok = CallKeyMessage::decode(&bytes).is_ok();
        prop_assert_eq!(ok, bytes.len() == 41 && bytes[0] == 1);
    }

    #[test]
    fn derivation_is_deterministic_and_separates(
        s in proptest::array::uniform32(any::<u8>()),
        id in any::<u64>(),
        other_id in any::<u64>(),
    ) {
        let secret = CallMasterSecret::from_bytes(s);
        let a = SrtpMasterKeys::derive(&secret, id, CallDirection::CallerToCallee);
        let b = SrtpMasterKeys::derive(&secret, id, CallDirection::CallerToCallee);
        let c = SrtpMasterKeys::derive(&secret, id, CallDirection::CalleeToCaller);
        prop_assert!(a.ct_eq(&b));
        prop_assert!(!a.ct_eq(&c));
        prop_assert!(a.key() != c.key() && a.salt() != c.salt());
        if other_id != id {
            let d = SrtpMasterKeys::derive(&secret, other_id, CallDirection::CallerToCallee);
            prop_assert!(!a.ct_eq(&d));
        }
        let sa = SrtpSessionKeys::derive_srtp(&a);
        let sc = SrtpSessionKeys::derive_srtp(&c);
        prop_assert!(sa.encryption_key() != sc.encryption_key());
    }
}
