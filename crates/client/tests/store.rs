//! The local store: sealed secrets, passphrase and key-file protection, refusals that leave the
//! files untouched, corruption as a typed error, and a changed contact identity refused until
//! accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use confianza_client::account::{Client, ClientError};
use confianza_client::sealing::SealingError;
use confianza_client::store::{
    AccountRecord, DATABASE_FILE, KEY_FILE, NewMessage, Protection, Store, StoreError,
};
use confianza_client::trust::TrustError;
use confianza_protocol::keys::IdentityKeyPair;
use confianza_protocol::prekeys::PreKeyRecord;
use confianza_protocol::state::SessionRecord;
use support::stores::{
    assert_secrets, group_message, group_sender_store, key_file_store, outgoing_group_text,
    passphrase, protected, receipts_of_two, store_with_secrets,
};
use support::{Device, Org, rng};

/// The SHA-256 of the database and key files (SQLite's transient `-shm` index excepted), to
/// prove a refusal changed nothing.
fn snapshot(dir: &Path) -> Vec<(String, String)> {
    use sha2::{Digest, Sha256};
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| !entry.file_name().to_string_lossy().ends_with("-shm"))
        .map(|entry| {
            let bytes = std::fs::read(entry.path()).unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                hex::encode(Sha256::digest(&bytes)),
            )
        })
        .filter(|(name, digest)| {
            // An empty write-ahead log holds nothing.
            !(name.ends_with("-wal") && digest == &hex::encode(Sha256::digest(b"")))
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn secrets_round_trip_sealed_under_a_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("alice");
    let mut r = rng(1);
    let (store, identity) =
        store_with_secrets(&profile, &protected("correct horse"), [7u8; 32], &mut r).await;
    let prekey = PreKeyRecord::generate(5, &mut r);
    store
        .save_one_time_pre_keys(std::slice::from_ref(&prekey))
        .await
        .unwrap();
    store
        .save_session("bob@example.org", 1, &SessionRecord::new())
        .await
        .unwrap();
    store.close().await;

    let database = std::fs::read(profile.join(DATABASE_FILE)).unwrap();
    let wal = std::fs::read(profile.join(format!("{DATABASE_FILE}-wal"))).unwrap_or_default();
    let secret = identity.private_key().to_bytes();
    for bytes in [&database, &wal] {
        assert!(
            !bytes.windows(32).any(|w| w == secret),
            "the identity key is stored in clear"
        );
    }

    let store = Store::open(&profile, || Some(passphrase("correct horse")))
        .await
        .unwrap();
    assert_secrets(&store, &identity, [7u8; 32]).await;
    let loaded = store.one_time_pre_key(5).await.unwrap().expect("stored");
    assert_eq!(
        loaded.key_pair.public.serialize(),
        prekey.key_pair.public.serialize()
    );
    assert!(store.session("bob@example.org", 1).await.unwrap().is_some());
    assert_eq!(
        store.session_devices("bob@example.org").await.unwrap(),
        vec![1]
    );
    assert!(store.session("bob@example.org", 2).await.unwrap().is_none());
}

/// The names of the files in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A refused open creates no file: no `-wal` or `-shm` is left beside a store that had none,
/// and the store still opens with the right passphrase afterwards, its secrets intact.
#[tokio::test]
async fn a_refused_open_leaves_no_wal_or_shm_file() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("alice");
    let mut r = rng(20);
    let (store, identity) =
        store_with_secrets(&profile, &protected("correct horse"), [3u8; 32], &mut r).await;
    store.close().await;
    let names = file_names(&profile);
    assert_eq!(names, vec![DATABASE_FILE.to_owned()], "a closed store");
    let before = snapshot(&profile);

    for attempt in 0..3 {
        let error = Store::open(&profile, || Some(passphrase("battery staple")))
            .await
            .unwrap_err();
        assert!(
            matches!(error, StoreError::Sealing(SealingError::WrongPassphrase)),
            "{error}"
        );
        let error = Store::open(&profile, || None).await.unwrap_err();
        assert!(matches!(error, StoreError::PassphraseRequired), "{error}");
        assert_eq!(file_names(&profile), names, "after attempt {attempt}");
    }
    assert_eq!(snapshot(&profile), before);

    let store = Store::open(&profile, || Some(passphrase("correct horse")))
        .await
        .unwrap();
    assert_secrets(&store, &identity, [3u8; 32]).await;
    store.close().await;
}

#[tokio::test]
async fn a_wrong_passphrase_is_refused_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("alice");
    let mut r = rng(2);
    let (store, _) =
        store_with_secrets(&profile, &protected("correct horse"), [1u8; 32], &mut r).await;
    store.close().await;
    let before = snapshot(&profile);

    let error = Store::open(&profile, || Some(passphrase("battery staple")))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Sealing(SealingError::WrongPassphrase)),
        "{error}"
    );
    let error = Store::open(&profile, || None).await.unwrap_err();
    assert!(matches!(error, StoreError::PassphraseRequired), "{error}");
    assert_eq!(snapshot(&profile), before);

    // Creating over an existing profile is refused too.
    assert!(matches!(
        Store::create(&profile, &protected("x"), &mut r).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(
        Store::open(&profile, || Some(passphrase("correct horse")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_key_file_profile_needs_its_own_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("bob");
    let mut r = rng(3);
    let (store, _) = store_with_secrets(&profile, &Protection::KeyFile, [2u8; 32], &mut r).await;
    store.close().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(profile.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode {mode:o}");
        let mode = std::fs::metadata(&profile).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "profile directory mode {mode:o}");
    }
    // No passphrase is asked for.
    let store = Store::open(&profile, || panic!("no passphrase needed"))
        .await
        .unwrap();
    assert_eq!(*store.noise_secret().await.unwrap(), [2u8; 32]);
    store.close().await;

    let key_path = profile.join(KEY_FILE);
    let original = std::fs::read(&key_path).unwrap();
    std::fs::write(&key_path, [0u8; 32]).unwrap();
    assert!(matches!(
        Store::open(&profile, || None).await,
        Err(StoreError::Sealing(SealingError::WrongKeyFile))
    ));
    std::fs::write(&key_path, &original[..31]).unwrap();
    assert!(matches!(
        Store::open(&profile, || None).await,
        Err(StoreError::Sealing(SealingError::WrongKeyFile))
    ));
    std::fs::remove_file(&key_path).unwrap();
    assert!(matches!(
        Store::open(&profile, || None).await,
        Err(StoreError::Io { .. })
    ));
}

#[tokio::test]
async fn corruption_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(4);

    // Not a database at all.
    let garbage = dir.path().join("garbage");
    std::fs::create_dir_all(&garbage).unwrap();
    std::fs::write(garbage.join(DATABASE_FILE), vec![0x5a; 8192]).unwrap();
    let error = Store::open(&garbage, || None).await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");

    // No profile.
    assert!(matches!(
        Store::open(&dir.path().join("nobody"), || None).await,
        Err(StoreError::NotFound(_))
    ));

    // A sealed row altered in place.
    let profile = dir.path().join("alice");
    let (store, _) = store_with_secrets(&profile, &Protection::KeyFile, [3u8; 32], &mut r).await;
    store.close().await;
    let url = format!("sqlite://{}", profile.join(DATABASE_FILE).display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE secrets SET sealed = substr(sealed, 1, 20) || x'00' || substr(sealed, 22) WHERE name = 'identity'")
        .execute(&pool)
        .await
        .unwrap();
    // A row copied under another name does not open either (rows are bound to their place).
    sqlx::query("UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE name = 'identity') WHERE name = 'noise'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let store = Store::open(&profile, || None).await.unwrap();
    assert!(matches!(
        store.identity().await,
        Err(StoreError::Sealing(SealingError::Corrupt { .. }))
    ));
    assert!(matches!(
        store.noise_secret().await,
        Err(StoreError::Sealing(SealingError::Corrupt { .. }))
    ));
}

/// A profile enrolled by hand (no server needed to check trust decisions).
async fn enrolled_client(dir: &Path, org: &Org, r: &mut support::TestRng) -> Client {
    let (store, identity) = store_with_secrets(dir, &Protection::KeyFile, [4u8; 32], r).await;
    let certificate = org
        .identity_certificate("alice@example.org", &identity, r)
        .der;
    let account = AccountRecord {
        address: "alice@example.org".into(),
        device_id: 1,
        registration_id: 7,
        server: "127.0.0.1:7443".into(),
        server_name: "chat.example.org".into(),
        server_key: None,
        certificate,
        enrolled_at_ms: 0,
    };
    store
        .save_account(
            &account,
            org.root.certificate_der(),
            &[org.intermediate.certificate_der().to_vec()],
        )
        .await
        .unwrap();
    store.close().await;
    Client::open(dir, || None).await.unwrap()
}

#[tokio::test]
async fn a_changed_identity_key_is_refused_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(5);
    let org = Org::new("Example Org", &mut r);
    let client = enrolled_client(&dir.path().join("alice"), &org, &mut r).await;
    const BOB: &str = "bob@example.org";

    let bob = Device::new(&mut r);
    let cert = org.identity_certificate(BOB, &bob.identity, &mut r);
    client
        .trust_bundle(BOB, &bob.bundle(&cert.der, None))
        .await
        .unwrap();
    let contact = client.store().contact(BOB).await.unwrap().unwrap();
    assert!(contact.certified && !contact.verified);
    client.set_verified(BOB, true).await.unwrap();

    // Bob re-enrolled with a new key (validly certified): still refused until accepted.
    let new_bob = Device::new(&mut r);
    let new_cert = org.identity_certificate(BOB, &new_bob.identity, &mut r);
    let error = client
        .trust_bundle(BOB, &new_bob.bundle(&new_cert.der, None))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Trust(TrustError::IdentityChanged(ref who)) if who == BOB),
        "{error}"
    );
    let contact = client.store().contact(BOB).await.unwrap().unwrap();
    assert_eq!(
        contact.identity_key,
        bob.identity.identity_key().serialize().to_vec()
    );
    assert_eq!(
        contact.pending_identity_key,
        Some(new_bob.identity.identity_key().serialize().to_vec())
    );
    let old_number = client
        .safety_number(BOB)
        .await
        .unwrap()
        .displayable()
        .to_string();

    client.accept_identity(BOB).await.unwrap();
    let contact = client.store().contact(BOB).await.unwrap().unwrap();
    assert_eq!(
        contact.identity_key,
        new_bob.identity.identity_key().serialize().to_vec()
    );
    assert!(!contact.verified, "a new key is not verified");
    assert_eq!(contact.pending_identity_key, None);
    client
        .trust_bundle(BOB, &new_bob.bundle(&new_cert.der, None))
        .await
        .unwrap();
    let new_number = client
        .safety_number(BOB)
        .await
        .unwrap()
        .displayable()
        .to_string();
    assert_ne!(old_number, new_number);
    assert_eq!(new_number.len(), 60);
}

#[tokio::test]
async fn an_incoming_message_is_committed_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(6);
    let store = key_file_store(dir.path(), "bob", &mut r).await;
    let prekey = PreKeyRecord::generate(9, &mut r);
    store
        .save_one_time_pre_keys(std::slice::from_ref(&prekey))
        .await
        .unwrap();
    let message = NewMessage {
        conversation: "alice@example.org",
        outgoing: false,
        peer: "alice@example.org",
        peer_device_id: 1,
        client_message_id: &[1u8; 16],
        kind: "text",
        body: "hello",
        sent_at_ms: 1,
        server_at_ms: Some(2),
        stored_at_ms: 3,
        verification: "certified",
    };
    let session = SessionRecord::new();
    assert!(
        !store
            .has_incoming("alice@example.org", &[1u8; 16])
            .await
            .unwrap()
    );
    assert!(
        store
            .commit_incoming(("alice@example.org", 1, &session), &message, Some(9), None)
            .await
            .unwrap()
    );
    // The prekey the session used is gone with the same commit.
    assert!(store.one_time_pre_key(9).await.unwrap().is_none());
    assert!(
        store
            .has_incoming("alice@example.org", &[1u8; 16])
            .await
            .unwrap()
    );
    // A redelivery changes nothing.
    assert!(
        !store
            .commit_incoming(("alice@example.org", 1, &session), &message, None, None)
            .await
            .unwrap()
    );
    // The same id from someone else is another message.
    let from_carol = NewMessage {
        peer: "carol@example.org",
        conversation: "carol@example.org",
        ..message.clone()
    };
    assert!(
        store
            .commit_incoming(("carol@example.org", 1, &session), &from_carol, None, None)
            .await
            .unwrap()
    );
    let history = store.history("alice@example.org", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].body, "hello");
    assert_eq!(history[0].server_at_ms, Some(2));
}

/// A contact's certificate is kept with the key it certifies: the same key seen again without
/// one keeps it, a different key drops it.
#[tokio::test]
async fn a_contacts_certificate_is_kept_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(21);
    let store = key_file_store(dir.path(), "alice", &mut r).await;
    let bob = "bob@example.org";
    assert_eq!(store.contact_certificate(bob).await.unwrap(), None);

    let first_key = IdentityKeyPair::generate(&mut r).identity_key().serialize();
    store
        .save_certified_contact(bob, &first_key, b"certificate one", 1)
        .await
        .unwrap();
    let contact = store.contact(bob).await.unwrap().unwrap();
    assert!(contact.certified);
    assert_eq!(
        store.contact_certificate(bob).await.unwrap().as_deref(),
        Some(&b"certificate one"[..])
    );
    // The same key, from a sender without a certificate: the certificate stays.
    store.save_contact(bob, &first_key, false, 2).await.unwrap();
    assert_eq!(
        store.contact_certificate(bob).await.unwrap().as_deref(),
        Some(&b"certificate one"[..])
    );
    // A renewed certificate for the same key replaces it.
    store
        .save_certified_contact(bob, &first_key, b"certificate two", 3)
        .await
        .unwrap();
    assert_eq!(
        store.contact_certificate(bob).await.unwrap().as_deref(),
        Some(&b"certificate two"[..])
    );
    // An accepted new key without a certificate: the old certificate no longer applies.
    let second_key = IdentityKeyPair::generate(&mut r).identity_key().serialize();
    store
        .save_contact(bob, &second_key, false, 4)
        .await
        .unwrap();
    assert_eq!(store.contact_certificate(bob).await.unwrap(), None);
    assert!(!store.contact(bob).await.unwrap().unwrap().certified);
}

#[tokio::test]
async fn a_group_message_is_read_member_by_member() {
    let dir = tempfile::tempdir().unwrap();
    let id = [1u8; 16];
    let store = group_sender_store(dir.path(), &id, &mut rng(7)).await;
    let state = async |store: &Store| {
        let message = group_message(store, &id).await;
        (message.read, message.group_receipts)
    };
    let reads = |read| receipts_of_two(0, read);
    assert_eq!(state(&store).await, (false, reads(0)));

    let ids = [id.to_vec()];
    assert_eq!(
        store.mark_read("bob@example.org", &ids, 10).await.unwrap(),
        1
    );
    assert_eq!(state(&store).await, (true, reads(1)));
    // Bob's receipt again, and one from someone the message was not sent to: nothing changes.
    for reader in ["bob@example.org", "mallory@example.org"] {
        assert_eq!(
            store.mark_read(reader, &ids, 11).await.unwrap(),
            0,
            "{reader}"
        );
    }
    assert_eq!(state(&store).await, (true, reads(1)));
    assert_eq!(
        store
            .mark_read("carol@example.org", &ids, 12)
            .await
            .unwrap(),
        1
    );
    assert_eq!(state(&store).await, (true, reads(2)));

    // A group message without per-member rows (sent before they were kept) is read once any
    // member says so.
    store
        .insert_outgoing(&outgoing_group_text(&[2u8; 16]))
        .await
        .unwrap();
    assert_eq!(
        store
            .mark_read("bob@example.org", &[vec![2u8; 16]], 13)
            .await
            .unwrap(),
        1
    );
    let older = group_message(&store, &[2u8; 16]).await;
    assert!(older.read);
    assert_eq!(older.group_receipts, None);
    store.close().await;
}

#[tokio::test]
async fn a_group_message_is_delivered_member_by_member() {
    let dir = tempfile::tempdir().unwrap();
    let id = [1u8; 16];
    let store = group_sender_store(dir.path(), &id, &mut rng(8)).await;
    let state = async |store: &Store| {
        let message = group_message(store, &id).await;
        (message.delivered, message.group_receipts)
    };
    let delivered = |delivered| receipts_of_two(delivered, 0);
    assert_eq!(state(&store).await, (false, delivered(0)));

    // A receipt from someone it was not sent to, or for an id never sent: nothing changes.
    let ids = [id.to_vec()];
    store
        .mark_delivered("mallory@example.org", &ids, 10)
        .await
        .unwrap();
    store
        .mark_delivered("bob@example.org", &[vec![9u8; 16]], 10)
        .await
        .unwrap();
    assert_eq!(state(&store).await, (false, delivered(0)));

    // The receipt names the member (one per device of theirs): each member counts once.
    for _device in 0..2 {
        store
            .mark_delivered("bob@example.org", &ids, 11)
            .await
            .unwrap();
        assert_eq!(state(&store).await, (true, delivered(1)));
    }
    store
        .mark_delivered("carol@example.org", &ids, 12)
        .await
        .unwrap();
    assert_eq!(state(&store).await, (true, delivered(2)));
    store.mark_read("bob@example.org", &ids, 13).await.unwrap();
    let message = group_message(&store, &id).await;
    assert_eq!(message.group_receipts, receipts_of_two(2, 1));

    // A group message without per-member rows cannot tell a member's receipt from one of this
    // account's other devices: it is left as it was.
    let older = [2u8; 16];
    store
        .insert_outgoing(&outgoing_group_text(&older))
        .await
        .unwrap();
    store
        .mark_delivered("bob@example.org", &[older.to_vec()], 14)
        .await
        .unwrap();
    let message = group_message(&store, &older).await;
    assert_eq!((message.delivered, message.group_receipts), (false, None));

    // One-to-one messages are delivered by their recipient's receipt alone, as before.
    let direct = NewMessage {
        conversation: "bob@example.org",
        peer: "bob@example.org",
        client_message_id: &[3u8; 16],
        ..outgoing_group_text(&id)
    };
    store.insert_outgoing(&direct).await.unwrap();
    let direct_ids = [vec![3u8; 16]];
    store
        .mark_delivered("carol@example.org", &direct_ids, 15)
        .await
        .unwrap();
    assert!(!store.history("bob@example.org", 1).await.unwrap()[0].delivered);
    store
        .mark_delivered("bob@example.org", &direct_ids, 16)
        .await
        .unwrap();
    let message = store.history("bob@example.org", 1).await.unwrap().remove(0);
    assert!(message.delivered);
    assert_eq!(message.group_receipts, None);
    store.close().await;
}
