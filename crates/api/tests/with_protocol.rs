//! The API carries real keys: an enrollment built from `confianza-protocol` keys is checked on
//! the server side (proof of possession, prekey signatures), and a bundle served back passes the
//! protocol crate's own verification, byte for byte.

use confianza_api::*;
use confianza_protocol::kem::KemPublicKey;
use confianza_protocol::keys::{IdentityKey, IdentityKeyPair, PublicKey};
use confianza_protocol::prekeys::{
    KyberPreKeyPublic, KyberPreKeyRecord, PreKeyBundle as ProtocolBundle, PreKeyRecord,
    SignedPreKeyRecord,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const ADDRESS: &str = "alice@example.org";
const NOISE_KEY: [u8; 32] = [0x42; 32];

struct Device {
    identity: IdentityKeyPair,
    signed: SignedPreKeyRecord,
    one_time: Vec<PreKeyRecord>,
    kyber: Vec<KyberPreKeyRecord>,
    last_resort: KyberPreKeyRecord,
}

fn device(rng: &mut StdRng) -> Device {
    let identity = IdentityKeyPair::generate(rng);
    Device {
        signed: SignedPreKeyRecord::generate(1, &identity, 0, rng),
        one_time: (1..=3).map(|id| PreKeyRecord::generate(id, rng)).collect(),
        kyber: (1..=2)
            .map(|id| KyberPreKeyRecord::generate(id, &identity, 0, rng))
            .collect(),
        last_resort: KyberPreKeyRecord::generate(100, &identity, 0, rng),
        identity,
    }
}

fn kyber_wire(record: &KyberPreKeyRecord) -> KyberPreKey {
    KyberPreKey {
        id: record.id,
        public_key: KyberPublicKey::from_slice(&record.key_pair.public.serialize())
            .expect("a serialized Kyber1024 key is 1 569 bytes"),
        signature: record.signature,
    }
}

fn enroll_frame(device: &Device, challenge: Challenge, rng: &mut StdRng) -> ClientFrame {
    let identity_key = device.identity.identity_key().serialize();
    let proof = device.identity.sign(
        &proof_message(ADDRESS, &challenge, &identity_key, &NOISE_KEY),
        rng,
    );
    ClientFrame::Request(Request {
        id: 1,
        body: RequestBody::Enroll(Box::new(EnrollRequest {
            address: ADDRESS.into(),
            enrollment_code: "K7Q2-9XMP".into(),
            registration_id: 4711,
            device_noise_key: NOISE_KEY,
            identity_key,
            challenge,
            proof,
            pre_keys: PreKeyUpload {
                signed_pre_key: Some(SignedPreKey {
                    id: device.signed.id,
                    public_key: device.signed.key_pair.public.serialize(),
                    signature: device.signed.signature,
                }),
                one_time_pre_keys: device
                    .one_time
                    .iter()
                    .map(|k| OneTimePreKey {
                        id: k.id,
                        public_key: k.key_pair.public.serialize(),
                    })
                    .collect(),
                kyber_pre_keys: device.kyber.iter().map(kyber_wire).collect(),
                kyber_last_resort: Some(kyber_wire(&device.last_resort)),
            },
        })),
    })
}

/// What a server does with an enrollment before asking the CA: every signature must verify.
fn server_checks(enroll: &EnrollRequest, issued_challenge: &Challenge) -> Result<(), &'static str> {
    if &enroll.challenge != issued_challenge {
        return Err("challenge");
    }
    let identity = IdentityKey::deserialize(&enroll.identity_key).map_err(|_| "identity key")?;
    let message = proof_message(
        &enroll.address,
        &enroll.challenge,
        &enroll.identity_key,
        &enroll.device_noise_key,
    );
    if !identity.verify_signature(&message, &enroll.proof) {
        return Err("proof");
    }
    let signed = enroll.pre_keys.signed_pre_key.as_ref().ok_or("signed")?;
    if !identity.verify_signature(&signed.public_key, &signed.signature) {
        return Err("signed prekey");
    }
    for kyber in enroll
        .pre_keys
        .kyber_pre_keys
        .iter()
        .chain(&enroll.pre_keys.kyber_last_resort)
    {
        if !identity.verify_signature(kyber.public_key.as_bytes(), &kyber.signature) {
            return Err("kyber prekey");
        }
    }
    Ok(())
}

#[test]
fn enrollment_proof_and_prekeys_verify_after_the_wire() {
    let mut rng = StdRng::seed_from_u64(3);
    let alice = device(&mut rng);
    let challenge = [9; 32];
    let bytes = enroll_frame(&alice, challenge, &mut rng)
        .encode()
        .expect("valid");

    let Ok(ClientFrame::Request(Request {
        body: RequestBody::Enroll(enroll),
        ..
    })) = decode_client_frame(&bytes)
    else {
        panic!("an enrollment")
    };
    assert_eq!(server_checks(&enroll, &challenge), Ok(()));

    // The proof binds the address, the challenge and the device's Noise key.
    let mut other = (*enroll).clone();
    other.address = "mallory@example.org".into();
    assert_eq!(server_checks(&other, &challenge), Err("proof"));
    let mut other = (*enroll).clone();
    other.device_noise_key = [0x43; 32];
    assert_eq!(server_checks(&other, &challenge), Err("proof"));
    let mut other = (*enroll).clone();
    other.challenge = [8; 32];
    assert_eq!(server_checks(&other, &[8; 32]), Err("proof"));
    assert_eq!(server_checks(&enroll, &[8; 32]), Err("challenge"));
    // A prekey signed by another identity is caught.
    let mallory = device(&mut rng);
    let mut other = (*enroll).clone();
    other.pre_keys.kyber_last_resort = Some(kyber_wire(&mallory.last_resort));
    assert_eq!(server_checks(&other, &challenge), Err("kyber prekey"));
}

#[test]
fn a_served_bundle_passes_the_protocol_verification() {
    let mut rng = StdRng::seed_from_u64(4);
    let bob = device(&mut rng);
    let served = PreKeyBundle {
        device_id: 1,
        registration_id: 99,
        identity_key: bob.identity.identity_key().serialize(),
        identity_certificate: vec![0x30, 0x82, 0x01, 0x00],
        ocsp_response: None,
        signed_pre_key: SignedPreKey {
            id: bob.signed.id,
            public_key: bob.signed.key_pair.public.serialize(),
            signature: bob.signed.signature,
        },
        one_time_pre_key: bob.one_time.first().map(|k| OneTimePreKey {
            id: k.id,
            public_key: k.key_pair.public.serialize(),
        }),
        kyber_pre_key: kyber_wire(&bob.last_resort),
        kyber_is_last_resort: true,
    };
    let frame = ServerFrame::Response(Response {
        id: 5,
        result: Ok(ResponseBody::Bundles(vec![served])),
    });
    let Ok(ServerFrame::Response(Response {
        result: Ok(ResponseBody::Bundles(bundles)),
        ..
    })) = decode_server_frame(&frame.encode().expect("valid"))
    else {
        panic!("bundles")
    };
    let [b] = bundles.as_slice() else {
        panic!("one bundle")
    };

    let to_protocol = |b: &PreKeyBundle| -> ProtocolBundle {
        ProtocolBundle {
            registration_id: b.registration_id,
            device_id: b.device_id,
            identity_key: IdentityKey::deserialize(&b.identity_key).expect("identity key"),
            pre_key: b.one_time_pre_key.as_ref().map(|k| {
                (
                    k.id,
                    PublicKey::deserialize(&k.public_key).expect("one-time key"),
                )
            }),
            signed_pre_key_id: b.signed_pre_key.id,
            signed_pre_key: PublicKey::deserialize(&b.signed_pre_key.public_key)
                .expect("signed prekey"),
            signed_pre_key_signature: b.signed_pre_key.signature.to_vec(),
            kyber_pre_key: Some(KyberPreKeyPublic {
                id: b.kyber_pre_key.id,
                key: KemPublicKey::deserialize(b.kyber_pre_key.public_key.as_bytes())
                    .expect("kyber key"),
                signature: b.kyber_pre_key.signature.to_vec(),
            }),
        }
    };
    assert!(to_protocol(b).verify().is_ok());

    // A server that swaps in its own signed prekey is caught by the protocol crate.
    let mut forged = b.clone();
    forged.signed_pre_key.public_key = device(&mut rng).signed.key_pair.public.serialize();
    assert!(to_protocol(&forged).verify().is_err());
}
