//! What the server presents in its Noise handshake: its Noise certificate and the CA chain
//! above it, encoded as a [`ServerHandshakePayload`].
//!
//! The chain lets a client authenticate the server before it sends anything: at first contact
//! (`confianza init`) the client checks the chain's root against the fingerprint it was given
//! out of band, or shows it for trust on first use, and checks that the certificate binds the
//! handshake's static key to the server's name, all before its enrollment code leaves the
//! machine. Later connections check the same certificate against the pinned root, with the
//! chain's intermediates as untrusted helpers.

use confianza_api::{EncodeError, ServerHandshakePayload};
use confianza_noise::{ServerConfig, ServerConfigError, StaticKeyPair};

use crate::authority::Authority;

/// The handshake payload could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeConfigError {
    /// A certificate of the data directory is outside the protocol's limits.
    #[error("the server's certificates do not fit the handshake: {0}")]
    Encode(#[from] EncodeError),
    /// The payload does not fit a Noise handshake message.
    #[error(transparent)]
    Noise(#[from] ServerConfigError),
}

/// The payload for `authority`'s data directory: the Noise certificate, then the CA chain
/// (intermediate first, root last).
pub fn payload(authority: &Authority) -> Result<ServerHandshakePayload, HandshakeConfigError> {
    let payload = ServerHandshakePayload {
        certificate: authority.noise_certificate_der(),
        ca_chain: authority.chain_der(),
    };
    // Checked here, so a data directory whose certificates break the limits is refused at
    // start, not by every client.
    payload.encode()?;
    Ok(payload)
}

/// The Noise configuration of the service: the data directory's Noise static key, presenting
/// [`payload`] in every server handshake message.
pub fn server_config(authority: &Authority) -> Result<ServerConfig, HandshakeConfigError> {
    let encoded = payload(authority)?.encode()?;
    Ok(ServerConfig::new(
        StaticKeyPair::from_secret_bytes(*authority.noise_static_private()),
        encoded,
    )?)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use confianza_noise::limits::MAX_HANDSHAKE_PAYLOAD_LEN;
    use confianza_pki::path::{self, ExpectedName, PathOptions};
    use confianza_pki::profile::ID_KP_CONFIANZA_NOISE_SERVER;
    use confianza_pki::seal::SealParams;
    use confianza_pki::signer::CaAlgorithm;

    use super::*;
    use crate::authority::init::{InitOptions, init};

    async fn authority(dir: &std::path::Path, key_type: CaAlgorithm) -> Authority {
        let options = InitOptions {
            organisation: "Handshake test".to_owned(),
            name: "chat.example.org".to_owned(),
            key_type,
            domains: vec!["example.org".to_owned()],
            open_registration: false,
            http_url: "http://127.0.0.1:8443".to_owned(),
            seal_params: SealParams::INSECURE_FOR_TESTS,
        };
        init(dir, options, None, None).await.expect("init");
        Authority::open(dir, None, None).await.expect("open")
    }

    #[tokio::test]
    async fn the_payload_carries_a_chain_that_validates_the_noise_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let authority = authority(dir.path(), CaAlgorithm::Ed25519).await;
        let config = server_config(&authority).expect("config");
        let payload = payload(&authority).expect("payload");
        let decoded =
            ServerHandshakePayload::decode(&payload.encode().expect("encodes")).expect("decodes");
        assert_eq!(decoded, payload);
        assert_eq!(
            decoded.ca_chain.last().map(Vec::as_slice),
            Some(authority.root_der())
        );

        // What a client does with it: the certificate validates to the chain's root for the
        // Noise-server use and the server's name, and certifies the handshake's static key.
        let (root, intermediates) = decoded.ca_chain.split_last().expect("a root");
        let root = path::parse_certificate(root).expect("root");
        let intermediates: Vec<_> = intermediates
            .iter()
            .map(|der| path::parse_certificate(der).expect("intermediate"))
            .collect();
        let leaf = path::parse_certificate(&decoded.certificate).expect("leaf");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock");
        let options = PathOptions {
            required_ekus: vec![ID_KP_CONFIANZA_NOISE_SERVER],
            expected_names: vec![ExpectedName::Dns("chat.example.org".to_owned())],
            ..PathOptions::default()
        };
        path::validate(
            &leaf,
            &intermediates,
            std::slice::from_ref(&root),
            now,
            &options,
        )
        .expect("validates");
        let certified = leaf
            .subject_public_key_info()
            .subject_public_key
            .as_bytes()
            .expect("key bytes");
        assert_eq!(certified, config.public_key().as_bytes());
    }

    #[tokio::test]
    async fn the_largest_chain_we_issue_fits_a_noise_handshake_message() {
        // RSA-3072 makes the largest certificates of the three algorithms.
        let dir = tempfile::tempdir().expect("temp dir");
        let authority = authority(dir.path(), CaAlgorithm::Rsa3072).await;
        let encoded = payload(&authority)
            .expect("payload")
            .encode()
            .expect("encodes");
        assert!(encoded.len() <= MAX_HANDSHAKE_PAYLOAD_LEN);
        const { assert!(ServerHandshakePayload::MAX_ENCODED_LEN <= MAX_HANDSHAKE_PAYLOAD_LEN) };
        server_config(&authority).expect("config");
    }
}
