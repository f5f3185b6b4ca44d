//! Entry points for fuzzers: arbitrary bytes in, no panic out.
//!
//! The cargo-fuzz targets in `fuzz/` call these; they are ordinary functions so that corpora
//! can also be replayed as tests.

use rand_core::CryptoRng;

use crate::frame::FrameDecoder;
use crate::keys::StaticKeyPair;
use crate::pipes::client::{ClientConfig, ClientHandshake};
use crate::pipes::server::{ServerConfig, ServerHandshake};
use crate::verify::ServerKeyRejected;

/// Decodes `data` as a stream of frames, split into chunks whose sizes come from `data`
/// itself. Returns the number of complete frames.
#[must_use]
pub fn decode_frames(data: &[u8]) -> usize {
    let mut decoder = FrameDecoder::new();
    let mut frames = 0;
    let chunk = usize::from(data.first().copied().unwrap_or(1)).max(1);
    for mut input in data.chunks(chunk) {
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(_)) => frames += 1,
                Ok(None) => break,
                Err(_) => return frames,
            }
        }
    }
    frames
}

/// Feeds `data` to a server as a client's first handshake frame; if the server answers, feeds
/// the same bytes again as the client's final frame. Returns whether a handshake completed
/// (it never should from fuzz input).
pub fn server_read_first_message(data: &[u8], rng: &mut impl CryptoRng) -> bool {
    let Ok(config) = ServerConfig::new(
        StaticKeyPair::from_secret_bytes([0x5a; 32]),
        b"cert".to_vec(),
    ) else {
        return false;
    };
    match ServerHandshake::accept(&config, data, rng) {
        Ok((handshake, _response)) => handshake.finish(data).is_ok(),
        Err(_) => false,
    }
}

/// Feeds `data` to a client (IK with a cached key when `data` starts with an odd byte, XX
/// otherwise) as the server's response. Returns whether the response was accepted.
pub fn client_read_response(data: &[u8], rng: &mut impl CryptoRng) -> bool {
    let config = ClientConfig::new(StaticKeyPair::from_secret_bytes([0xa5; 32]));
    let cached = data
        .first()
        .filter(|byte| *byte & 1 == 1)
        .map(|_| StaticKeyPair::from_secret_bytes([0x5a; 32]).public_key());
    let Ok((client, _hello)) = ClientHandshake::start(&config, cached, rng) else {
        return false;
    };
    let Ok(server) = client.read_response(data) else {
        return false;
    };
    let refuse = |_: &crate::PublicKey, _: &[u8]| Err(ServerKeyRejected::new("fuzzing"));
    server.authenticate(&refuse, b"").is_ok()
}
