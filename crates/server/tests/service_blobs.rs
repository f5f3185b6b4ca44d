//! The blob store end to end over TCP on 127.0.0.1, with blobs in a local folder: chunked
//! uploads, an interrupted upload resumed on a new connection, downloads equal to the upload,
//! the size limit at N and N+1, refused offsets and chunk lengths, other accounts, racing
//! uploads of one chunk, a crash between storing a chunk and counting it, expiry, and the
//! per-account quota (bytes and count, concurrent creations, freed by expiry).

mod support;

use std::time::{Duration, SystemTime};

use confianza_api::{BlobId, BlobStatus, ErrorCode, RequestBody, ResponseBody};
use confianza_server::service::{BLOB_CHUNK_SIZE, BlobQuota, BlobStore, expire_blobs_once};
use confianza_server::store::MessageStore;
use support::blobs::create_blobs_racing;
use support::{TestClient, TestServer};

const CHUNK: usize = BLOB_CHUNK_SIZE as usize;

/// A server whose blobs live in their own folder, with `adjust` applied to the store.
async fn server_with_blobs(
    adjust: impl FnOnce(BlobStore) -> BlobStore,
) -> (TestServer, BlobStore, tempfile::TempDir) {
    let folder = tempfile::tempdir().expect("temp dir");
    let blobs = adjust(BlobStore::local(&folder.path().join("blobs")).expect("blob folder"));
    let configured = blobs.clone();
    let server = TestServer::start_with(move |options| options.blobs = Some(configured)).await;
    (server, blobs, folder)
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(151).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

async fn create(client: &mut TestClient, size: u64) -> BlobId {
    match client
        .request(RequestBody::BlobCreate { size })
        .await
        .expect("created")
    {
        ResponseBody::BlobCreated {
            blob_id,
            chunk_size,
            expires_at_ms,
        } => {
            assert_eq!(chunk_size, BLOB_CHUNK_SIZE);
            assert!(expires_at_ms > now_ms());
            blob_id
        }
        other => panic!("not BlobCreated: {other:?}"),
    }
}

async fn upload(
    client: &mut TestClient,
    blob_id: BlobId,
    offset: u64,
    chunk: &[u8],
) -> Result<BlobStatus, confianza_api::ApiError> {
    client
        .request(RequestBody::BlobUpload {
            blob_id,
            offset,
            chunk: chunk.to_vec(),
        })
        .await
        .map(|answer| match answer {
            ResponseBody::BlobStatus(status) => status,
            other => panic!("not BlobStatus: {other:?}"),
        })
}

async fn status(
    client: &mut TestClient,
    blob_id: BlobId,
) -> Result<BlobStatus, confianza_api::ApiError> {
    client
        .request(RequestBody::BlobStatus { blob_id })
        .await
        .map(|answer| match answer {
            ResponseBody::BlobStatus(status) => status,
            other => panic!("not BlobStatus: {other:?}"),
        })
}

/// Uploads `data[from..]` in chunks.
async fn upload_from(client: &mut TestClient, blob_id: BlobId, data: &[u8], from: usize) {
    upload_range(client, blob_id, data, from, data.len()).await;
}

/// Uploads `data[from..to]` in chunks (`to` at a chunk boundary or the end).
async fn upload_range(
    client: &mut TestClient,
    blob_id: BlobId,
    data: &[u8],
    from: usize,
    to: usize,
) {
    let mut offset = from;
    while offset < to {
        let end = (offset + CHUNK).min(data.len());
        let status = upload(client, blob_id, offset as u64, &data[offset..end])
            .await
            .expect("chunk accepted");
        assert_eq!(status.received, end as u64);
        assert_eq!(status.complete, end == data.len());
        offset = end;
    }
}

/// Downloads a whole blob in requests of `length` bytes.
async fn download(client: &mut TestClient, blob_id: BlobId, length: u32) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let answer = client
            .request(RequestBody::BlobDownload {
                blob_id,
                offset: data.len() as u64,
                length,
            })
            .await
            .expect("downloaded");
        let ResponseBody::BlobChunk {
            offset,
            size,
            data: piece,
            ..
        } = answer
        else {
            panic!("not BlobChunk");
        };
        assert_eq!(offset, data.len() as u64);
        data.extend_from_slice(&piece);
        if data.len() as u64 == size {
            return data;
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_interrupted_and_resumed_downloads_as_uploaded() {
    let (mut server, _blobs, _folder) = server_with_blobs(|blobs| blobs).await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut bob = server.enroll("bob@example.org", 1).await;
    let data = content(3 * CHUNK + 1_234, 7);
    let blob_id = create(&mut alice, data.len() as u64).await;

    // Two chunks, then the connection is gone.
    upload_range(&mut alice, blob_id, &data, 0, 2 * CHUNK).await;
    let alice_again = alice.reconnect(&server).await;
    let mut alice = alice_again;
    let resume = status(&mut alice, blob_id).await.expect("status");
    assert_eq!(
        (resume.size, resume.received, resume.complete),
        (data.len() as u64, 2 * CHUNK as u64, false)
    );
    // Not downloadable before it is complete.
    let early = bob
        .request(RequestBody::BlobDownload {
            blob_id,
            offset: 0,
            length: 10,
        })
        .await
        .expect_err("incomplete");
    assert_eq!(early.code, ErrorCode::NotFound);

    upload_from(&mut alice, blob_id, &data, 2 * CHUNK).await;
    let done = status(&mut alice, blob_id).await.expect("status");
    assert!(done.complete);

    // Anyone registered who knows the id downloads it, in any request size.
    assert_eq!(download(&mut bob, blob_id, BLOB_CHUNK_SIZE).await, data);
    assert_eq!(download(&mut bob, blob_id, 10_000).await, data);
    // A range across two chunks.
    let ResponseBody::BlobChunk { data: piece, .. } = bob
        .request(RequestBody::BlobDownload {
            blob_id,
            offset: CHUNK as u64 - 100,
            length: 300,
        })
        .await
        .expect("range")
    else {
        panic!("not BlobChunk");
    };
    assert_eq!(piece, data[CHUNK - 100..CHUNK + 200]);
    // A request past the end is refused; one running over it is cut at the end.
    let past = bob
        .request(RequestBody::BlobDownload {
            blob_id,
            offset: data.len() as u64,
            length: 1,
        })
        .await
        .expect_err("past the end");
    assert_eq!(past.code, ErrorCode::BadRequest);
    let ResponseBody::BlobChunk { data: tail, .. } = bob
        .request(RequestBody::BlobDownload {
            blob_id,
            offset: data.len() as u64 - 5,
            length: 100,
        })
        .await
        .expect("tail")
    else {
        panic!("not BlobChunk");
    };
    assert_eq!(tail, data[data.len() - 5..]);

    // Complete: no more uploads.
    let again = upload(&mut alice, blob_id, data.len() as u64, b"x")
        .await
        .expect_err("complete");
    assert_eq!(again.code, ErrorCode::Conflict);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_is_enforced_at_n_and_n_plus_one() {
    const LIMIT: u64 = 5 * 1024 * 1024;
    let (mut server, _blobs, _folder) =
        server_with_blobs(|blobs| blobs.with_max_size(LIMIT).expect("valid limit")).await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    create(&mut alice, LIMIT).await;
    let refused = alice
        .request(RequestBody::BlobCreate { size: LIMIT + 1 })
        .await
        .expect_err("too large");
    assert_eq!(refused.code, ErrorCode::TooLarge);
    server.shutdown().await;
}

async fn try_create(client: &mut TestClient, size: u64) -> Result<BlobId, ErrorCode> {
    match client.request(RequestBody::BlobCreate { size }).await {
        Ok(ResponseBody::BlobCreated { blob_id, .. }) => Ok(blob_id),
        Ok(other) => panic!("not BlobCreated: {other:?}"),
        Err(error) => Err(error.code),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blob_quota_holds_per_account_in_bytes_and_in_count_and_expiry_frees_it() {
    const BYTES: u64 = 100_000;
    let quota = BlobQuota {
        bytes: BYTES,
        count: 3,
    };
    let (mut server, blobs, _folder) =
        server_with_blobs(move |blobs| blobs.with_quota(quota)).await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    // Exactly the quota fits; an unfinished upload reserves its declared size.
    create(&mut alice, 60_000).await;
    create(&mut alice, BYTES - 60_000).await;
    let refused = alice
        .request(RequestBody::BlobCreate { size: 1 })
        .await
        .expect_err("past the byte quota");
    assert_eq!(refused.code, ErrorCode::QuotaExceeded);
    assert!(refused.message.contains("100000"), "{}", refused.message);

    // Another account has its own quota: three blobs, and a fourth is refused by count.
    let mut bob = server.enroll("bob@example.org", 1).await;
    for _ in 0..3 {
        create(&mut bob, 1).await;
    }
    let refused = bob
        .request(RequestBody::BlobCreate { size: 1 })
        .await
        .expect_err("past the count quota");
    assert_eq!(refused.code, ErrorCode::QuotaExceeded);
    assert!(refused.message.contains("blobs"), "{}", refused.message);

    // Deleted by the expiry task (here 31 days on): the quota is free again.
    let later = SystemTime::now() + Duration::from_secs(31 * 24 * 60 * 60);
    assert_eq!(expire_blobs_once(&server.store, &blobs, later).await, 5);
    create(&mut alice, BYTES).await;
    create(&mut bob, 1).await;
    server.shutdown().await;

    // A blob past its time frees its share at once, before any sweep: with blobs that expire
    // at creation, a quota of one blob never fills.
    let one = BlobQuota {
        bytes: 10,
        count: 1,
    };
    let (mut server, _blobs, _folder) =
        server_with_blobs(move |blobs| blobs.with_ttl(Duration::ZERO).with_quota(one)).await;
    let mut carol = server.enroll("carol@example.org", 1).await;
    for _ in 0..3 {
        create_expired(&mut carol).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creations_of_one_account_never_pass_its_quota() {
    const DEVICES: usize = 4;
    const CREATIONS_EACH: usize = 3;
    const ALLOWED: u64 = 5;
    let quota = BlobQuota {
        bytes: 1 << 20,
        count: ALLOWED,
    };
    let (mut server, _blobs, _folder) =
        server_with_blobs(move |blobs| blobs.with_quota(quota)).await;
    let mut devices = Vec::new();
    for _ in 0..DEVICES {
        devices.push(server.enroll("dave@example.org", 1).await);
    }
    let mut racing = create_blobs_racing(devices, CREATIONS_EACH, 1_000).await;
    assert_eq!(racing.created.len() as u64, ALLOWED);
    assert_eq!(racing.refused, DEVICES * CREATIONS_EACH - ALLOWED as usize);
    let mut device = racing.devices.pop().expect("a device");
    assert_eq!(
        try_create(&mut device, 1).await,
        Err(ErrorCode::QuotaExceeded)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_offsets_lengths_and_accounts_are_refused() {
    let (mut server, _blobs, _folder) = server_with_blobs(|blobs| blobs).await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let mut mallory = server.enroll("mallory@example.org", 1).await;
    let data = content(CHUNK + 10, 1);
    let blob_id = create(&mut alice, data.len() as u64).await;

    // Ahead of the resume point, and behind it after a chunk.
    let ahead = upload(&mut alice, blob_id, CHUNK as u64, &data[CHUNK..])
        .await
        .expect_err("ahead");
    assert_eq!(ahead.code, ErrorCode::BadRequest);
    // A chunk shorter than the chunk size (not the last one) breaks the layout.
    let short = upload(&mut alice, blob_id, 0, &data[..100])
        .await
        .expect_err("short");
    assert_eq!(short.code, ErrorCode::BadRequest);
    upload(&mut alice, blob_id, 0, &data[..CHUNK])
        .await
        .expect("first chunk");
    let behind = upload(&mut alice, blob_id, 0, &data[..CHUNK])
        .await
        .expect_err("behind");
    assert_eq!(behind.code, ErrorCode::BadRequest);
    // The last chunk must be exactly the rest.
    let long = upload(&mut alice, blob_id, CHUNK as u64, &data[CHUNK - 1..])
        .await
        .expect_err("longer than the rest");
    assert_eq!(long.code, ErrorCode::BadRequest);

    // Another account may neither upload to nor inspect alice's blob.
    let foreign = upload(&mut mallory, blob_id, CHUNK as u64, &data[CHUNK..])
        .await
        .expect_err("foreign upload");
    assert_eq!(foreign.code, ErrorCode::Forbidden);
    let foreign = status(&mut mallory, blob_id)
        .await
        .expect_err("foreign status");
    assert_eq!(foreign.code, ErrorCode::Forbidden);
    // An unknown id.
    let unknown = status(&mut alice, BlobId([0xee; 16]))
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code, ErrorCode::NotFound);

    upload(&mut alice, blob_id, CHUNK as u64, &data[CHUNK..])
        .await
        .expect("last chunk");
    assert_eq!(download(&mut mallory, blob_id, BLOB_CHUNK_SIZE).await, data);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_stored_but_not_counted_is_accepted_again_only_with_the_same_bytes() {
    let (mut server, blobs, _folder) = server_with_blobs(|blobs| blobs).await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let data = content(2 * CHUNK, 3);
    let blob_id = create(&mut alice, data.len() as u64).await;
    // What a crash between the two steps of an upload leaves: the object, not the count.
    blobs
        .put_chunk(blob_id, 0, &data[..CHUNK])
        .await
        .expect("object stored");
    assert_eq!(
        status(&mut alice, blob_id).await.expect("status").received,
        0
    );
    let mut different = data[..CHUNK].to_vec();
    different[17] ^= 0x55;
    let refused = upload(&mut alice, blob_id, 0, &different)
        .await
        .expect_err("other bytes");
    assert_eq!(refused.code, ErrorCode::Conflict);
    upload_from(&mut alice, blob_id, &data, 0).await;
    assert_eq!(download(&mut alice, blob_id, BLOB_CHUNK_SIZE).await, data);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_of_one_chunk_store_the_acknowledged_bytes() {
    let (mut server, _blobs, _folder) = server_with_blobs(|blobs| blobs).await;
    let mut first = server.enroll("alice@example.org", 1).await;
    let mut second = server.enroll("alice@example.org", 1).await;
    for round in 0..8u8 {
        let one = content(CHUNK, round);
        let two = content(CHUNK, round.wrapping_add(100));
        let blob_id = create(&mut first, CHUNK as u64).await;
        let (a, b) = tokio::join!(
            upload(&mut first, blob_id, 0, &one),
            upload(&mut second, blob_id, 0, &two)
        );
        let winner = match (a, b) {
            (Ok(_), Err(error)) => {
                assert!(
                    matches!(error.code, ErrorCode::Conflict | ErrorCode::BadRequest),
                    "{error:?}"
                );
                &one
            }
            (Err(error), Ok(_)) => {
                assert!(
                    matches!(error.code, ErrorCode::Conflict | ErrorCode::BadRequest),
                    "{error:?}"
                );
                &two
            }
            other => panic!("exactly one upload wins: {other:?}"),
        };
        assert_eq!(
            &download(&mut first, blob_id, BLOB_CHUNK_SIZE).await,
            winner
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_blobs_are_refused_then_deleted_with_their_objects() {
    let (mut server, blobs, folder) = server_with_blobs(|blobs| blobs).await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let data = content(CHUNK + 1, 9);
    let blob_id = create(&mut alice, data.len() as u64).await;
    upload_from(&mut alice, blob_id, &data, 0).await;
    let objects = folder
        .path()
        .join("blobs")
        .join("blobs")
        .join(hex_id(blob_id));
    assert!(objects.is_dir(), "{} holds the chunks", objects.display());

    // Nothing has expired yet.
    assert_eq!(
        expire_blobs_once(&server.store, &blobs, SystemTime::now()).await,
        0
    );
    // 31 days on, the record and the objects go.
    let later = SystemTime::now() + Duration::from_secs(31 * 24 * 60 * 60);
    assert_eq!(expire_blobs_once(&server.store, &blobs, later).await, 1);
    assert!(server.store.blob(blob_id).await.expect("lookup").is_none());
    let left = std::fs::read_dir(&objects).map_or(0, Iterator::count);
    assert_eq!(left, 0, "objects deleted");
    let gone = status(&mut alice, blob_id).await.expect_err("gone");
    assert_eq!(gone.code, ErrorCode::NotFound);
    server.shutdown().await;

    // A blob past its time but not yet swept is refused as expired.
    let (mut server, _blobs, _folder) =
        server_with_blobs(|blobs| blobs.with_ttl(Duration::ZERO)).await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let blob_id = create_expired(&mut alice).await;
    let expired = upload(&mut alice, blob_id, 0, b"x")
        .await
        .expect_err("expired");
    assert_eq!(expired.code, ErrorCode::Expired);
    server.shutdown().await;
}

/// Creates a blob on a server whose blobs expire at once.
async fn create_expired(client: &mut TestClient) -> BlobId {
    match client
        .request(RequestBody::BlobCreate { size: 1 })
        .await
        .expect("created")
    {
        ResponseBody::BlobCreated { blob_id, .. } => blob_id,
        other => panic!("not BlobCreated: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_blob_store_says_unsupported() {
    let mut server = TestServer::start().await;
    let mut alice = server.enroll("alice@example.org", 1).await;
    let refused = alice
        .request(RequestBody::BlobCreate { size: 10 })
        .await
        .expect_err("unsupported");
    assert_eq!(refused.code, ErrorCode::Unsupported);
    server.shutdown().await;
}

fn hex_id(id: BlobId) -> String {
    id.0.iter().map(|byte| format!("{byte:02x}")).collect()
}
