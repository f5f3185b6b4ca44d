//! Local stores made directly (no server): with device secrets to seal and reopen, and
//! history rows of an outgoing group message.

use std::path::Path;

use confianza_client::sealing::Passphrase;
use confianza_client::store::{GroupReceipts, NewMessage, Protection, Store, StoredMessage};
use confianza_pki::seal::SealParams;
use confianza_protocol::keys::IdentityKeyPair;

use super::TestRng;

/// The conversation of the group the history helpers write to.
pub const GROUP: &str = "group:00112233445566778899aabbccddeeff";

pub fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text).unwrap()
}

/// Passphrase protection at the tests' (cheap) Argon2id costs.
pub fn protected(text: &str) -> Protection {
    Protection::Passphrase(passphrase(text), SealParams::INSECURE_FOR_TESTS)
}

/// A new store at `profile` under `protection`, holding a fresh identity key and
/// `noise_secret` as its device secrets.
pub async fn store_with_secrets(
    profile: &Path,
    protection: &Protection,
    noise_secret: [u8; 32],
    r: &mut TestRng,
) -> (Store, IdentityKeyPair) {
    let store = Store::create(profile, protection, r).await.unwrap();
    let identity = IdentityKeyPair::generate(r);
    store
        .save_device_secrets(&identity, &noise_secret)
        .await
        .unwrap();
    (store, identity)
}

/// Checks that `store` unseals the device secrets [`store_with_secrets`] saved.
pub async fn assert_secrets(store: &Store, identity: &IdentityKeyPair, noise_secret: [u8; 32]) {
    assert_eq!(
        store.identity().await.unwrap().identity_key().serialize(),
        identity.identity_key().serialize()
    );
    assert_eq!(*store.noise_secret().await.unwrap(), noise_secret);
}

/// A new store protected by a key file, in `dir/name`.
pub async fn key_file_store(dir: &Path, name: &str, r: &mut TestRng) -> Store {
    Store::create(&dir.join(name), &Protection::KeyFile, r)
        .await
        .unwrap()
}

/// An outgoing text to [`GROUP`] with client message id `client_message_id`.
pub fn outgoing_group_text(client_message_id: &[u8; 16]) -> NewMessage<'_> {
    NewMessage {
        conversation: GROUP,
        outgoing: true,
        peer: GROUP,
        peer_device_id: 0,
        client_message_id,
        kind: "text",
        body: "hello team",
        sent_at_ms: 1,
        server_at_ms: Some(2),
        stored_at_ms: 3,
        verification: "certified",
    }
}

/// The members other than this user of the group [`group_sender_store`] writes to.
pub const MEMBERS: [&str; 2] = ["bob@example.org", "carol@example.org"];

/// A new key-file store in `dir/alice` whose history holds one outgoing text to [`GROUP`],
/// with `client_message_id`, sent to [`MEMBERS`].
pub async fn group_sender_store(
    dir: &Path,
    client_message_id: &[u8; 16],
    r: &mut TestRng,
) -> Store {
    let store = key_file_store(dir, "alice", r).await;
    let members = MEMBERS.map(str::to_owned);
    store
        .insert_outgoing_group(&outgoing_group_text(client_message_id), &members)
        .await
        .unwrap();
    store
}

/// The receipts of an outgoing message to a group of this user and two others (such as
/// [`MEMBERS`]): `delivered` and `read` of the two.
pub fn receipts_of_two(delivered: u32, read: u32) -> Option<GroupReceipts> {
    Some(GroupReceipts {
        recipients: 2,
        delivered,
        read,
    })
}

/// The message with `client_message_id` in [`GROUP`]'s history.
pub async fn group_message(store: &Store, client_message_id: &[u8]) -> StoredMessage {
    store
        .history(GROUP, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|message| message.client_message_id == client_message_id)
        .expect("the message is in the history")
}
