//! Attachment cipher: known answer, round trips, every refusal, and the size limit at N and N+1.
//! (Wycheproof AES-CBC and HMAC vectors run as unit tests beside the code, through the module's
//! own streaming paths.)

use aes::cipher::{BlockModeEncrypt, KeyIvInit};
use confianza_protocol::attachment::{
    AttachmentEncryptor, AttachmentKeys, AttachmentVerifier, DecryptError, EncryptError,
    EncryptedAttachment, KeysLengthError, MAX_ATTACHMENT_BLOB_LEN, MAX_ATTACHMENT_PLAINTEXT_LEN,
    MIN_BLOB_LEN, VerifiedAttachment, VerifyError, blob_len,
};
use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn encrypt(
    keys: &AttachmentKeys,
    plaintext: &[u8],
    chunk: usize,
) -> (Vec<u8>, EncryptedAttachment) {
    let mut encryptor = AttachmentEncryptor::new(keys, &mut rng());
    let mut blob = Vec::new();
    for piece in plaintext.chunks(chunk.max(1)) {
        encryptor.update(piece, &mut blob).expect("within limit");
    }
    let sent = encryptor.finish(&mut blob);
    (blob, sent)
}

fn verify(
    keys: &AttachmentKeys,
    blob: &[u8],
    blob_len: u64,
    digest: [u8; 32],
    chunk: usize,
) -> Result<VerifiedAttachment, VerifyError> {
    let mut verifier = AttachmentVerifier::new(keys.clone(), blob_len, digest)?;
    for piece in blob.chunks(chunk.max(1)) {
        verifier.update(piece)?;
    }
    verifier.finish()
}

fn decrypt(
    verified: VerifiedAttachment,
    blob: &[u8],
    chunk: usize,
) -> Result<Vec<u8>, DecryptError> {
    let mut decryptor = verified.into_decryptor();
    let mut out = Vec::new();
    for piece in blob.chunks(chunk.max(1)) {
        decryptor.update(piece, &mut out)?;
    }
    let len = decryptor.finish()?;
    assert_eq!(len, out.len() as u64);
    Ok(out)
}

fn open(keys: &AttachmentKeys, blob: &[u8], sent: &EncryptedAttachment, chunk: usize) -> Vec<u8> {
    let verified = verify(keys, blob, sent.blob_len, sent.digest, chunk).expect("verifies");
    decrypt(verified, blob, chunk).expect("decrypts")
}

fn fixed_keys() -> AttachmentKeys {
    let bytes: [u8; 64] = core::array::from_fn(|i| i as u8);
    AttachmentKeys::from_bytes(&bytes)
}

/// Computed independently with Python `cryptography` (AES-256-CBC, PKCS7, HMAC-SHA256, SHA-256).
const KAT_BLOB: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaff78e756df991c9a56d83267eec5a06dadd4b01ea5d64ac373a26674b8d27505bf67666a3c6685c10aaa1587fe2afa708a356abe010ab8ec665a0e73dbf6f16bd89702830bbaed37e5ce9c68336b1d5fe";
const KAT_DIGEST: &str = "880ee1781ed49e5d82c8acd31c3dd2e1e9331fee9cf55cb6c2078927e399ea18";
const KAT_PLAINTEXT: &[u8] = b"Confianza attachment known answer: 40 b.";

#[test]
fn known_answer() {
    let keys = fixed_keys();
    let iv: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
    for chunk in [1, 3, 16, 40] {
        let mut encryptor = AttachmentEncryptor::with_iv(&keys, iv);
        let mut blob = Vec::new();
        for piece in KAT_PLAINTEXT.chunks(chunk) {
            encryptor.update(piece, &mut blob).expect("small");
        }
        let sent = encryptor.finish(&mut blob);
        assert_eq!(hex::encode(&blob), KAT_BLOB);
        assert_eq!(hex::encode(sent.digest), KAT_DIGEST);
        assert_eq!(sent.blob_len, blob.len() as u64);
        assert_eq!(sent.plaintext_len, 40);
        assert_eq!(open(&keys, &blob, &sent, chunk), KAT_PLAINTEXT);
    }
}

#[test]
fn keys_round_trip_and_length() {
    let keys = AttachmentKeys::generate(&mut rng());
    let bytes = keys.to_bytes();
    let again = AttachmentKeys::from_slice(&bytes[..]).expect("64 bytes");
    assert_eq!(*again.to_bytes(), *bytes);
    assert_eq!(
        AttachmentKeys::from_slice(&bytes[..63]).err(),
        Some(KeysLengthError(63))
    );
    assert_eq!(
        AttachmentKeys::from_slice(&[0; 65]).err(),
        Some(KeysLengthError(65))
    );
}

#[test]
fn empty_plaintext_and_finish_without_update() {
    let keys = fixed_keys();
    let encryptor = AttachmentEncryptor::new(&keys, &mut rng());
    let mut blob = Vec::new();
    let sent = encryptor.finish(&mut blob);
    assert_eq!(blob.len() as u64, MIN_BLOB_LEN);
    assert_eq!(sent.blob_len, MIN_BLOB_LEN);
    assert_eq!(sent.digest, <[u8; 32]>::from(Sha256::digest(&blob)));
    assert!(open(&keys, &blob, &sent, 5).is_empty());
}

#[test]
fn fresh_iv_each_time() {
    let keys = fixed_keys();
    let mut r = rng();
    let mut blobs = Vec::new();
    for _ in 0..2 {
        let mut encryptor = AttachmentEncryptor::new(&keys, &mut r);
        let mut blob = Vec::new();
        encryptor.update(b"same", &mut blob).expect("small");
        encryptor.finish(&mut blob);
        blobs.push(blob);
    }
    assert_ne!(blobs[0][..16], blobs[1][..16]);
    assert_ne!(blobs[0], blobs[1]);
}

#[test]
fn every_tampered_byte_is_refused_by_mac_or_digest() {
    let keys = fixed_keys();
    let (blob, sent) = encrypt(&keys, &[0x42; 100], 100);
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        let err = verify(&keys, &bad, sent.blob_len, sent.digest, 33).err();
        // A changed MAC byte leaves the computed MAC alone but not the received one.
        assert_eq!(err, Some(VerifyError::BadMac), "byte {i}");
    }
}

#[test]
fn wrong_digest_and_wrong_keys() {
    let keys = fixed_keys();
    let (blob, sent) = encrypt(&keys, b"payload", 3);
    let mut digest = sent.digest;
    digest[31] ^= 0x80;
    assert_eq!(
        verify(&keys, &blob, sent.blob_len, digest, 64).err(),
        Some(VerifyError::BadDigest)
    );
    let other = AttachmentKeys::generate(&mut rng());
    assert_eq!(
        verify(&other, &blob, sent.blob_len, sent.digest, 64).err(),
        Some(VerifyError::BadMac)
    );
}

#[test]
fn truncated_and_overlong_blobs() {
    let keys = fixed_keys();
    let (blob, sent) = encrypt(&keys, &[7; 1000], 64);
    for cut in [0, 1, 16, 500, blob.len() - 32, blob.len() - 1] {
        assert_eq!(
            verify(&keys, &blob[..cut], sent.blob_len, sent.digest, 100).err(),
            Some(VerifyError::Truncated {
                expected: sent.blob_len,
                received: cut as u64
            }),
            "cut {cut}"
        );
    }
    let mut long = blob.clone();
    long.push(0);
    assert_eq!(
        verify(&keys, &long, sent.blob_len, sent.digest, 100).err(),
        Some(VerifyError::TooLong {
            expected: sent.blob_len
        })
    );
    // Announcing the longer length: not a possible blob length.
    assert_eq!(
        AttachmentVerifier::new(keys.clone(), sent.blob_len + 1, sent.digest).err(),
        Some(VerifyError::InvalidLength(sent.blob_len + 1))
    );
    // Announcing a shorter, plausible length: refused once more bytes arrive.
    assert!(matches!(
        verify(&keys, &blob, sent.blob_len - 16, sent.digest, 100).err(),
        Some(VerifyError::TooLong { .. })
    ));
}

#[test]
fn impossible_lengths_refused_before_download() {
    let keys = fixed_keys();
    for len in [0, 1, 47, 48, 63, 65, 79, 81] {
        assert_eq!(
            AttachmentVerifier::new(keys.clone(), len, [0; 32]).err(),
            Some(VerifyError::InvalidLength(len)),
            "len {len}"
        );
    }
    for len in [64, 80, 96] {
        assert!(
            AttachmentVerifier::new(keys.clone(), len, [0; 32]).is_ok(),
            "len {len}"
        );
    }
}

/// A blob whose MAC and digest are right but whose padding is not: only a malicious sender can
/// make one, since the MAC key is needed.
#[test]
fn bad_padding_from_a_sender_with_the_keys() {
    let keys = fixed_keys();
    let key_bytes = keys.to_bytes();
    let iv = [9u8; 16];
    let mut body = [0x11u8; 32];
    body[31] = 0x00; // padding byte 0 is never valid
    let mut blocks = body;
    let mut enc = cbc::Encryptor::<aes::Aes256>::new(
        (&key_bytes[..32]).try_into().expect("32"),
        (&iv).into(),
    );
    for block in blocks.chunks_exact_mut(16) {
        enc.encrypt_block(block.try_into().expect("16"));
    }
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&key_bytes[32..]).expect("key");
    mac.update(&iv);
    mac.update(&blocks);
    let mut blob = iv.to_vec();
    blob.extend_from_slice(&blocks);
    blob.extend_from_slice(&mac.finalize().into_bytes());
    let digest: [u8; 32] = Sha256::digest(&blob).into();

    let verified = verify(&keys, &blob, blob.len() as u64, digest, 10).expect("MAC is right");
    assert_eq!(decrypt(verified, &blob, 10), Err(DecryptError::BadPadding));
}

#[test]
fn pass_two_detects_another_blob() {
    let keys = fixed_keys();
    let (blob, sent) = encrypt(&keys, &[1; 300], 300);
    let (other, _) = encrypt(&keys, &[2; 300], 300);
    assert_eq!(blob.len(), other.len());
    let verified = verify(&keys, &blob, sent.blob_len, sent.digest, 1024).expect("ok");
    assert_eq!(
        decrypt(verified, &other, 1024),
        Err(DecryptError::BlobChanged)
    );

    // Only the MAC bytes differ in pass 2.
    let mut mac_changed = blob.clone();
    let last = mac_changed.len() - 1;
    mac_changed[last] ^= 1;
    let verified = verify(&keys, &blob, sent.blob_len, sent.digest, 1024).expect("ok");
    assert_eq!(
        decrypt(verified, &mac_changed, 1024),
        Err(DecryptError::BlobChanged)
    );
}

#[test]
fn pass_two_truncated_or_overlong() {
    let keys = fixed_keys();
    let (blob, sent) = encrypt(&keys, &[3; 200], 200);
    let verified = verify(&keys, &blob, sent.blob_len, sent.digest, 64).expect("ok");
    assert_eq!(
        decrypt(verified, &blob[..blob.len() - 1], 64),
        Err(DecryptError::Truncated {
            expected: sent.blob_len,
            received: sent.blob_len - 1
        })
    );
    let verified = verify(&keys, &blob, sent.blob_len, sent.digest, 64).expect("ok");
    let mut decryptor = verified.into_decryptor();
    let mut out = Vec::new();
    decryptor.update(&blob, &mut out).expect("whole blob");
    let err = Err(DecryptError::TooLong {
        expected: sent.blob_len,
    });
    assert_eq!(decryptor.update(&[0], &mut out), err);
    // The failure sticks.
    assert_eq!(decryptor.update(&[], &mut out), err);
    assert_eq!(decryptor.finish().map(|_| ()), err);
}

#[test]
fn blob_len_formula() {
    assert_eq!(blob_len(0), 64);
    assert_eq!(blob_len(15), 64);
    assert_eq!(blob_len(16), 80);
    assert_eq!(
        MAX_ATTACHMENT_BLOB_LEN,
        16 + MAX_ATTACHMENT_PLAINTEXT_LEN + 16 + 32
    );
}

/// Streams `len` zero bytes through `encryptor` in 1 MiB chunks, handing each piece of blob to
/// `sink`; memory stays at one chunk whatever `len` is.
fn stream_zeros(encryptor: &mut AttachmentEncryptor, len: u64, mut sink: impl FnMut(&[u8])) {
    let chunk = vec![0u8; 1 << 20];
    let mut out = Vec::with_capacity(chunk.len() + 32);
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        out.clear();
        encryptor
            .update(&chunk[..n], &mut out)
            .expect("within limit");
        sink(&out);
        left -= n as u64;
    }
}

#[test]
fn size_limit_at_n_and_n_plus_one() {
    let keys = fixed_keys();
    let too_large = Err(EncryptError::TooLarge {
        limit: MAX_ATTACHMENT_PLAINTEXT_LEN,
    });
    let mut encryptor = AttachmentEncryptor::with_iv(&keys, [5; 16]);
    let mut streamed = 0u64;
    stream_zeros(&mut encryptor, MAX_ATTACHMENT_PLAINTEXT_LEN - 10, |b| {
        streamed += b.len() as u64
    });
    let mut out = Vec::new();
    // A chunk crossing the limit is refused whole: nothing written, nothing counted.
    assert_eq!(encryptor.update(&[0; 11], &mut out), too_large);
    assert!(out.is_empty());
    // Exactly N.
    encryptor
        .update(&[0; 10], &mut out)
        .expect("N bytes are allowed");
    // N + 1.
    assert_eq!(encryptor.update(&[0], &mut out), too_large);
    let sent = encryptor.finish(&mut out);
    streamed += out.len() as u64;
    assert_eq!(sent.plaintext_len, MAX_ATTACHMENT_PLAINTEXT_LEN);
    assert_eq!(sent.blob_len, MAX_ATTACHMENT_BLOB_LEN);
    assert_eq!(streamed, MAX_ATTACHMENT_BLOB_LEN);

    // The verifier accepts the announced maximum and refuses the next possible length up front.
    assert!(AttachmentVerifier::new(keys.clone(), MAX_ATTACHMENT_BLOB_LEN, sent.digest).is_ok());
    assert_eq!(
        AttachmentVerifier::new(keys, MAX_ATTACHMENT_BLOB_LEN + 16, sent.digest).err(),
        Some(VerifyError::TooLarge {
            blob_len: MAX_ATTACHMENT_BLOB_LEN + 16,
            limit: MAX_ATTACHMENT_BLOB_LEN
        })
    );
}

/// The largest blob goes through both receiving passes, streamed: the blob is regenerated
/// (same keys and IV) for each pass instead of being held in memory. Several hundred MiB of
/// cipher work, so it runs in optimised builds (`cargo test --release`).
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "300 MiB of cipher work; run with --release"
)]
fn largest_blob_verifies_and_decrypts_streamed() {
    let keys = fixed_keys();
    let iv = [5; 16];
    let regenerate = |sink: &mut dyn FnMut(&[u8])| {
        let mut encryptor = AttachmentEncryptor::with_iv(&keys, iv);
        stream_zeros(&mut encryptor, MAX_ATTACHMENT_PLAINTEXT_LEN, &mut *sink);
        let mut out = Vec::new();
        let sent = encryptor.finish(&mut out);
        sink(&out);
        sent
    };
    let sent = regenerate(&mut |_| {});
    let mut verifier =
        AttachmentVerifier::new(keys.clone(), sent.blob_len, sent.digest).expect("N ok");
    regenerate(&mut |b| verifier.update(b).expect("within length"));
    let mut decryptor = verifier.finish().expect("verifies").into_decryptor();
    let mut plaintext = Vec::new();
    let mut nonzero = false;
    let mut total = 0u64;
    regenerate(&mut |b| {
        plaintext.clear();
        decryptor.update(b, &mut plaintext).expect("decrypts");
        nonzero |= plaintext.iter().any(|&x| x != 0);
        total += plaintext.len() as u64;
    });
    assert_eq!(decryptor.finish(), Ok(MAX_ATTACHMENT_PLAINTEXT_LEN));
    assert_eq!(total, MAX_ATTACHMENT_PLAINTEXT_LEN);
    assert!(!nonzero);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_any_chunking(
        plaintext in proptest::collection::vec(any::<u8>(), 0..3000),
        enc_chunk in 1usize..600,
        dec_chunk in 1usize..600,
    ) {
        let keys = AttachmentKeys::generate(&mut rng());
        let (blob, sent) = encrypt(&keys, &plaintext, enc_chunk);
        prop_assert_eq!(blob.len() as u64, blob_len(plaintext.len() as u64));
        prop_assert_eq!(sent.blob_len, blob.len() as u64);
        prop_assert_eq!(sent.digest, <[u8; 32]>::from(Sha256::digest(&blob)));
        let verified = verify(&keys, &blob, sent.blob_len, sent.digest, dec_chunk);
        prop_assert!(verified.is_ok());
        let out = decrypt(verified.expect("checked"), &blob, dec_chunk);
        prop_assert_eq!(out, Ok(plaintext));
    }

    #[test]
    fn random_blobs_never_verify_or_panic(
        blob in proptest::collection::vec(any::<u8>(), 64..400),
        chunk in 1usize..100,
    ) {
        let keys = fixed_keys();
        let len = blob.len() as u64;
        let digest: [u8; 32] = Sha256::digest(&blob).into();
        match verify(&keys, &blob, len, digest, chunk) {
            Err(VerifyError::InvalidLength(_)) | Err(VerifyError::BadMac) => {}
            other => prop_assert!(false, "unexpected {:?}", other.map(|_| ())),
        }
    }
}
