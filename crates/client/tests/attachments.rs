//! Attachments between two clients through the real messaging service (started in-process on
//! 127.0.0.1:0 with a local blob folder): a 1 MiB round trip, an upload interrupted by
//! dropping the client and resumed, blobs altered on the server refused, and a hostile file
//! name kept inside the target folder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confianza_api::{BlobId, RequestBody, ResponseBody};
use confianza_client::account::Client;
use confianza_client::attachments::{AttachmentError, Progress};
use confianza_client::content::AttachmentPointer;
use confianza_protocol::attachment::{AttachmentEncryptor, AttachmentKeys};
use support::server::{Server, next_message, passphrase};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// Deterministic, non-repeating test content.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

/// Files in the profile's temporary attachment folder.
fn temp_files(profile: &Path) -> usize {
    std::fs::read_dir(profile.join("attachments"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_round_trips_and_lands_under_a_fresh_name() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let [alice, mut bob] = server.connected(home.path(), [ALICE, BOB]).await;

    let file = home.path().join("photo.png");
    let data = content(1024 * 1024);
    std::fs::write(&file, &data).unwrap();
    let mut seen = Vec::<Progress>::new();
    alice
        .send_attachment(BOB, &file, |p| seen.push(p))
        .await
        .unwrap();
    let last = *seen.last().unwrap();
    assert_eq!(last.done, last.total);
    assert!(last.total > data.len() as u64);
    assert!(seen.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(temp_files(&home.path().join(ALICE)), 0, "temp file removed");

    let message = next_message(&mut bob).await;
    assert_eq!(
        (message.kind.as_str(), message.body.as_str()),
        ("attachment", "photo.png")
    );
    let incoming = bob.attachment(message.id).await.unwrap().unwrap();
    assert_eq!(incoming.file_name, "photo.png");
    assert_eq!(incoming.content_type, "image/png");
    assert_eq!(incoming.plaintext_size, data.len() as u64);

    let downloads = tempfile::tempdir().unwrap();
    let mut progress = Vec::new();
    let saved = bob
        .save_attachment(message.id, downloads.path(), |p| progress.push(p))
        .await
        .unwrap();
    assert_eq!(saved.path, downloads.path().join("photo.png"));
    assert_eq!(saved.size, data.len() as u64);
    assert_eq!(std::fs::read(&saved.path).unwrap(), data);
    assert_eq!(progress.last().map(|p| p.done), Some(incoming.blob_size));

    // Saved again: the first copy is not replaced.
    let again = bob
        .save_attachment(message.id, downloads.path(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.path, downloads.path().join("photo (1).png"));
    assert_eq!(std::fs::read(&again.path).unwrap(), data);
    // Nothing else was left in the folder or the profile.
    assert_eq!(std::fs::read_dir(downloads.path()).unwrap().count(), 2);
    assert_eq!(temp_files(&home.path().join(BOB)), 0);

    // A message without an attachment.
    alice.send_text(BOB, "just text").await.unwrap();
    let text = next_message(&mut bob).await;
    assert!(bob.attachment(text.id).await.unwrap().is_none());
    assert!(matches!(
        bob.save_attachment(text.id, downloads.path(), |_| {}).await,
        Err(AttachmentError::NoAttachment(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes_where_the_server_stopped() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let [alice, mut bob] = server.connected(home.path(), [ALICE, BOB]).await;
    let file = home.path().join("big.bin");
    let data = content(512 * 1024);
    std::fs::write(&file, &data).unwrap();

    // Stop after a few chunks by dropping the upload, then the client.
    let stopped_at = Arc::new(AtomicU64::new(0));
    let notify = Arc::new(tokio::sync::Notify::new());
    {
        let stop = stopped_at.clone();
        let wake = notify.clone();
        let upload = alice.send_attachment(BOB, &file, move |p| {
            if p.done >= 4 * 32 * 1024 && stop.load(Ordering::SeqCst) == 0 {
                stop.store(p.done, Ordering::SeqCst);
                wake.notify_one();
            }
        });
        tokio::select! {
            result = upload => panic!("the upload should have been interrupted: {result:?}"),
            () = notify.notified() => {}
        }
    }
    drop(alice);
    assert!(stopped_at.load(Ordering::SeqCst) > 0);
    let profile = home.path().join(ALICE);
    assert_eq!(
        temp_files(&profile),
        1,
        "the encrypted copy is kept for the resume"
    );

    // Reopened from disk, the next call resumes: its first progress report is not zero.
    let mut alice = Client::open(&profile, passphrase).await.unwrap();
    alice.connect().await.unwrap();
    let mut first = None;
    alice
        .send_attachment(BOB, &file, |p| {
            first.get_or_insert(p);
        })
        .await
        .unwrap();
    let first = first.unwrap();
    assert!(
        first.done >= stopped_at.load(Ordering::SeqCst),
        "resumed at {} after stopping at {}",
        first.done,
        stopped_at.load(Ordering::SeqCst)
    );
    assert!(first.done < first.total);
    assert_eq!(temp_files(&profile), 0);
    // One blob on the server: the resume did not start a new one.
    let blobs: std::collections::HashSet<_> = server
        .blob_files()
        .iter()
        .map(|path| path.parent().unwrap().to_owned())
        .collect();
    assert_eq!(blobs.len(), 1);

    let message = next_message(&mut bob).await;
    let downloads = tempfile::tempdir().unwrap();
    let saved = bob
        .save_attachment(message.id, downloads.path(), |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(saved.path).unwrap(), data);
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_altered_on_the_server_is_refused_and_nothing_is_written() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let [alice, mut bob] = server.connected(home.path(), [ALICE, BOB]).await;
    let file = home.path().join("contract.pdf");
    std::fs::write(&file, content(100_000)).unwrap();
    alice.send_attachment(BOB, &file, |_| {}).await.unwrap();
    let message = next_message(&mut bob).await;

    // Flip one bit of the stored ciphertext.
    let chunk = server.blob_files().into_iter().next().unwrap();
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&chunk, bytes).unwrap();

    let downloads = tempfile::tempdir().unwrap();
    let result = bob
        .save_attachment(message.id, downloads.path(), |_| {})
        .await;
    assert!(
        matches!(result, Err(AttachmentError::MacMismatch)),
        "{result:?}"
    );
    assert_eq!(std::fs::read_dir(downloads.path()).unwrap().count(), 0);
    assert_eq!(temp_files(&home.path().join(BOB)), 0);
}

/// Uploads `blob` through `client`'s connection; its id.
async fn upload_raw(client: &Client, blob: &[u8]) -> BlobId {
    let ResponseBody::BlobCreated { blob_id, .. } = client
        .request(RequestBody::BlobCreate {
            size: blob.len() as u64,
        })
        .await
        .unwrap()
    else {
        panic!("not a blob id");
    };
    for (i, chunk) in blob.chunks(32 * 1024).enumerate() {
        client
            .request(RequestBody::BlobUpload {
                blob_id,
                offset: (i * 32 * 1024) as u64,
                chunk: chunk.to_vec(),
            })
            .await
            .unwrap();
    }
    blob_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointers_that_do_not_match_their_blob_are_refused() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let [bob] = server.connected(home.path(), [BOB]).await;
    let plaintext = content(70_000);
    let keys = AttachmentKeys::generate(&mut rand::rng());
    let mut blob = Vec::new();
    let mut encryptor = AttachmentEncryptor::new(&keys, &mut rand::rng());
    encryptor.update(&plaintext, &mut blob).unwrap();
    let encrypted = encryptor.finish(&mut blob);
    let blob_id = upload_raw(&bob, &blob).await;
    let good = AttachmentPointer {
        blob_id: blob_id.0.to_vec(),
        keys: keys.to_bytes().to_vec(),
        digest: encrypted.digest.to_vec(),
        size: encrypted.blob_len,
        plaintext_size: encrypted.plaintext_len,
        file_name: "../../etc/x".into(),
        content_type: "text/plain".into(),
        group_id: Vec::new(),
    };
    let downloads = tempfile::tempdir().unwrap();

    let mut wrong_digest = good.clone();
    wrong_digest.digest[0] ^= 1;
    let result = bob
        .save_pointer(&wrong_digest, downloads.path(), |_| {})
        .await;
    assert!(
        matches!(result, Err(AttachmentError::DigestMismatch)),
        "{result:?}"
    );

    let mut wrong_key = good.clone();
    wrong_key.keys[40] ^= 1;
    let result = bob.save_pointer(&wrong_key, downloads.path(), |_| {}).await;
    assert!(
        matches!(result, Err(AttachmentError::MacMismatch)),
        "{result:?}"
    );

    let mut unknown = good.clone();
    unknown.blob_id = vec![0xAB; 16];
    let result = bob.save_pointer(&unknown, downloads.path(), |_| {}).await;
    assert!(
        matches!(result, Err(AttachmentError::BlobNotFound)),
        "{result:?}"
    );

    let mut wrong_size = good.clone();
    wrong_size.plaintext_size += 16;
    wrong_size.size += 16;
    let result = bob
        .save_pointer(&wrong_size, downloads.path(), |_| {})
        .await;
    assert!(
        matches!(result, Err(AttachmentError::WrongLength(_))),
        "{result:?}"
    );
    assert_eq!(std::fs::read_dir(downloads.path()).unwrap().count(), 0);

    // The hostile name lands inside the folder as `x`.
    let saved = bob
        .save_pointer(&good, downloads.path(), |_| {})
        .await
        .unwrap();
    assert_eq!(saved.path, downloads.path().join("x"));
    assert_eq!(std::fs::read(&saved.path).unwrap(), plaintext);
    assert_eq!(std::fs::read_dir(downloads.path()).unwrap().count(), 1);
    assert!(!home.path().join("etc").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_attachment_is_uploaded_once_and_saved_by_every_member() {
    const CAROL: &str = "carol@example.org";
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let [alice, mut bob, mut carol] = server.connected(home.path(), [ALICE, BOB, CAROL]).await;
    let group = alice
        .group_create("design", &[BOB.to_owned(), CAROL.to_owned()])
        .await
        .unwrap();

    let file = home.path().join("mockup.png");
    let data = content(200_000);
    std::fs::write(&file, &data).unwrap();
    let report = alice
        .send_group_attachment(group.id, &file, |_| {})
        .await
        .unwrap();
    assert_eq!(report.distributed_to.len(), 2);
    assert_eq!(temp_files(&home.path().join(ALICE)), 0, "temp file removed");
    let conversation = confianza_client::groups::group_conversation(&group.id);
    let mine = alice.history(&conversation, 10).await.unwrap();
    assert_eq!(
        (
            mine[0].kind.as_str(),
            mine[0].body.as_str(),
            mine[0].outgoing
        ),
        ("attachment", "mockup.png", true)
    );

    let mut blob_size = 0;
    for member in [&mut bob, &mut carol] {
        let message = next_message(member).await;
        assert_eq!(
            (
                message.kind.as_str(),
                message.body.as_str(),
                message.peer.as_str()
            ),
            ("attachment", "mockup.png", ALICE)
        );
        assert_eq!(message.conversation, conversation);
        let incoming = member.attachment(message.id).await.unwrap().unwrap();
        blob_size = incoming.blob_size;
        let downloads = tempfile::tempdir().unwrap();
        let saved = member
            .save_attachment(message.id, downloads.path(), |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(&saved.path).unwrap(), data);
    }
    // One upload: the server holds one copy of the blob, whatever the number of members.
    let stored: u64 = server
        .blob_files()
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum();
    assert_eq!(stored, blob_size);
}
