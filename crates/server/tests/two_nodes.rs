//! Two service nodes of one organisation, as `confianza-server run` with PostgreSQL and NATS
//! makes them: one CA, one PostgreSQL schema (fresh per test, dropped after), one NATS
//! subject (fresh per test), two listeners. Clients on different nodes exchange messages live
//! (the NATS wake-up reaches the other node's connection) and offline, a one-time prekey
//! is claimed once under concurrent fetches on both nodes, a device that connects to one
//! node displaces its older connection on the other, both nodes read one blob usage per
//! account (the quota) from PostgreSQL, and blob creations racing on both nodes never take an
//! account past its quota.
//!
//! Needs `DATABASE_URL` and `NATS_URL`; each test is skipped with a note when either is unset:
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test NATS_URL=nats://127.0.0.1:4222 \
//!     cargo test -p confianza-server --test two_nodes
//! ```

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use confianza_api::{
    BlobId, CiphertextType, DeliveryItem, DeviceSelector, ErrorCode, Notice, OutgoingEnvelope,
    RequestBody, ResponseBody,
};
use confianza_pki::seal::SealParams;
use confianza_pki::signer::CaAlgorithm;
use confianza_server::authority::Authority;
use confianza_server::authority::init::{InitOptions, init};
use confianza_server::service::{BlobQuota, BlobStore, NatsLink, ServiceOptions, start};
use confianza_server::store::{AnyMessageStore, BlobRecord, BlobUsage, Database, MessageStore};
use rand::Rng;
use sqlx::AssertSqlSafe;
use support::blobs::create_blobs_racing;
use support::{TestClient, TestServer};

/// What the nodes of one test share.
struct Cluster {
    /// Holds the data directory of the CA.
    first: TestServer,
    second: TestServer,
    /// Each node's connection pool, closed before the schema is dropped.
    pools: Vec<Database>,
    /// Declared last: dropped after the nodes, also when the test panics.
    _schema: SchemaGuard,
}

/// Drops the test's schema when dropped, even on a panic: on a thread of its own, since a
/// `Drop` cannot wait on the test's runtime.
struct SchemaGuard {
    database_url: String,
    schema: String,
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let url = self.database_url.clone();
        let schema = self.schema.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let admin = sqlx::PgPool::connect(&url).await?;
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&admin)
                    .await?;
                admin.close().await;
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("the test schema {} was not dropped", self.schema);
        }
    }
}

impl Cluster {
    /// Two nodes, or `None` with a note when PostgreSQL or NATS is not configured.
    async fn start() -> Option<Self> {
        Self::start_with(None).await
    }

    /// [`Cluster::start`], both nodes keeping blobs in `blobs` (one object store, as S3 is).
    async fn start_with(blobs: Option<BlobStore>) -> Option<Self> {
        let (Ok(database_url), Ok(nats_url)) =
            (std::env::var("DATABASE_URL"), std::env::var("NATS_URL"))
        else {
            eprintln!("DATABASE_URL or NATS_URL is not set: two-node test skipped");
            return None;
        };
        let mut random = [0u8; 8];
        rand::rng().fill_bytes(&mut random);
        let suffix = hex::encode(random);
        let schema = format!("t_{suffix}");
        let namespace = format!("test-{suffix}");
        let admin = sqlx::PgPool::connect(&database_url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create the test schema");
        admin.close().await;
        let schema_guard = SchemaGuard {
            database_url: database_url.clone(),
            schema: schema.clone(),
        };

        let dir = tempfile::tempdir().expect("temp dir");
        let options = InitOptions {
            organisation: "Example Org".to_owned(),
            name: "chat.example.org".to_owned(),
            key_type: CaAlgorithm::Ed25519,
            domains: vec!["example.org".to_owned()],
            open_registration: false,
            http_url: "http://127.0.0.1:8443".to_owned(),
            seal_params: SealParams::INSECURE_FOR_TESTS,
        };
        init(dir.path(), options, None, None).await.expect("init");
        let authority = Authority::open(dir.path(), None, None)
            .await
            .expect("open authority");
        let (first, first_pool) = node(
            dir,
            &authority,
            &database_url,
            &schema,
            &nats_url,
            &namespace,
            blobs.clone(),
        )
        .await;
        let (second, second_pool) = node(
            tempfile::tempdir().expect("temp dir"),
            &authority,
            &database_url,
            &schema,
            &nats_url,
            &namespace,
            blobs,
        )
        .await;
        Some(Self {
            first,
            second,
            pools: vec![first_pool, second_pool],
            _schema: schema_guard,
        })
    }

    /// Stops both nodes gracefully; the schema goes when `self` is dropped.
    async fn finish(mut self) {
        self.first.shutdown().await;
        self.second.shutdown().await;
        for database in &self.pools {
            if let Database::Postgres(pool) = database {
                pool.close().await;
            }
        }
    }
}

/// One node: its own PostgreSQL pool on the shared schema, its own NATS connection.
async fn node(
    dir: tempfile::TempDir,
    authority: &Authority,
    database_url: &str,
    schema: &str,
    nats_url: &str,
    namespace: &str,
    blobs: Option<BlobStore>,
) -> (TestServer, Database) {
    let database = Database::connect_postgres_in_schema(database_url, schema)
        .await
        .expect("open PostgreSQL");
    let store = AnyMessageStore::new(&database).expect("message store");
    let noise =
        confianza_server::service::handshake::server_config(authority).expect("noise config");
    let localhost: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let mut options = ServiceOptions::new(
        store.clone(),
        Arc::new(authority.clone()),
        noise,
        localhost,
        localhost,
    );
    let link = NatsLink::connect(nats_url, namespace, "test-node")
        .await
        .expect("NATS");
    options.bus = Some(link.bus_builder());
    options.blobs = blobs;
    let running = start(options).await.expect("service starts");
    let server = TestServer {
        noise_addr: running.noise_addr,
        http_addr: running.http_addr,
        dir,
        authority: authority.clone(),
        store,
        running: Some(running),
    };
    (server, database)
}

/// A recipient device, whether connected or not.
#[derive(Debug, Clone)]
struct Target {
    address: String,
    device_id: u32,
    registration_id: u32,
}

impl Target {
    fn of(client: &TestClient) -> Self {
        Self {
            address: client.address.clone(),
            device_id: client.device_id,
            registration_id: client.keys.as_ref().expect("enrolled").registration_id,
        }
    }
}

async fn send(from: &mut TestClient, to: &Target, body: &[u8], id: u8) {
    let answer = from
        .request(RequestBody::Send {
            recipient: to.address.clone(),
            envelopes: vec![OutgoingEnvelope {
                device_id: to.device_id,
                registration_id: to.registration_id,
                ciphertext_type: CiphertextType::Whisper,
                body: body.to_vec(),
                client_message_id: [id; 16],
            }],
        })
        .await
        .expect("sent");
    assert!(
        matches!(answer, ResponseBody::Sent { accepted: 1, .. }),
        "{answer:?}"
    );
}

fn body_of(item: &DeliveryItem) -> &[u8] {
    match item {
        DeliveryItem::Envelope(envelope) => &envelope.body,
        DeliveryItem::Receipt(_) => panic!("a receipt, not an envelope"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_on_different_nodes_exchange_messages_live_and_offline() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut alice = cluster.first.enroll("alice@example.org", 1).await;
    let mut bob = cluster.second.enroll("bob@example.org", 1).await;
    alice.notice(|n| *n == Notice::MailboxDrained).await;
    bob.notice(|n| *n == Notice::MailboxDrained).await;

    // Live, both ways, with no reconnection: only the NATS wake-up can deliver these.
    let (alice_target, bob_target) = (Target::of(&alice), Target::of(&bob));
    send(&mut alice, &bob_target, b"hello from node one", 1).await;
    let delivery = bob.delivery().await;
    assert_eq!(body_of(&delivery.item), b"hello from node one");
    bob.ack(vec![delivery.id]).await;
    // The delivery receipt travels back to the first node live too.
    let receipt = alice.delivery().await;
    let DeliveryItem::Receipt(receipt_body) = &receipt.item else {
        panic!("not a receipt");
    };
    assert_eq!(receipt_body.recipient, "bob@example.org");
    assert_eq!(receipt_body.client_message_ids, vec![[1; 16]]);
    alice.ack(vec![receipt.id]).await;

    send(&mut bob, &alice_target, b"hello from node two", 2).await;
    let delivery = alice.delivery().await;
    assert_eq!(body_of(&delivery.item), b"hello from node two");
    alice.ack(vec![delivery.id]).await;

    // Offline: bob leaves the second node, alice sends three through the first, bob comes
    // back on the first node and gets them in order, once.
    let bob_noise = bob.noise.clone();
    drop(bob);
    for (id, body) in [(10, b"one".as_slice()), (11, b"two"), (12, b"three")] {
        send(&mut alice, &bob_target, body, id).await;
    }
    let mut bob = TestClient::connect(&cluster.first, bob_noise).await;
    let backlog = bob.backlog_until_drained().await;
    // The receipt for bob's own message (acknowledged by alice around when he left) may be
    // there too; the envelopes come in order, once.
    let bodies: Vec<&[u8]> = backlog
        .iter()
        .filter(|d| matches!(d.item, DeliveryItem::Envelope(_)))
        .map(|d| body_of(&d.item))
        .collect();
    assert_eq!(bodies, vec![b"one".as_slice(), b"two", b"three"]);
    bob.ack(backlog.iter().map(|d| d.id).collect()).await;

    drop((alice, bob));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_prekey_is_claimed_once_across_nodes() {
    const FETCHERS_PER_NODE: usize = 4;
    const FETCHES_EACH: usize = 30;
    const ONE_TIME_KEYS: u32 = 100;
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let _carol = cluster
        .first
        .enroll("carol@example.org", ONE_TIME_KEYS)
        .await;
    let mut fetchers = Vec::new();
    for i in 0..FETCHERS_PER_NODE {
        fetchers.push(
            cluster
                .first
                .enroll(&format!("one{i}@example.org"), 1)
                .await,
        );
        fetchers.push(
            cluster
                .second
                .enroll(&format!("two{i}@example.org"), 1)
                .await,
        );
    }
    let tasks: Vec<_> = fetchers
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..FETCHES_EACH {
                    ids.push(
                        client
                            .send_request(RequestBody::FetchBundle {
                                address: "carol@example.org".into(),
                                device: DeviceSelector::One(1),
                            })
                            .await,
                    );
                }
                let mut claimed = Vec::new();
                for id in ids {
                    let Ok(ResponseBody::Bundles(bundles)) = client.response(id).await.result
                    else {
                        panic!("fetch failed");
                    };
                    let bundle = bundles.into_iter().next().expect("one bundle");
                    claimed.push(bundle.one_time_pre_key.map(|key| key.id));
                }
                claimed
            })
        })
        .collect();
    let mut handed_out = HashSet::new();
    let mut without_one_time_key = 0;
    for task in tasks {
        for claimed in task.await.expect("fetcher") {
            match claimed {
                Some(id) => assert!(handed_out.insert(id), "prekey {id} handed out twice"),
                None => without_one_time_key += 1,
            }
        }
    }
    let fetches = 2 * FETCHERS_PER_NODE * FETCHES_EACH;
    assert_eq!(handed_out.len(), ONE_TIME_KEYS as usize);
    assert_eq!(without_one_time_key, fetches - ONE_TIME_KEYS as usize);
    cluster.finish().await;
}

/// Waits until `sender` holds delivery receipts for every id in `ids` (each receipt is
/// queued in the commit that deletes the acknowledged entries, so the acks are applied).
async fn receipts_for(sender: &mut TestClient, ids: &[u8]) {
    let mut waiting: HashSet<[u8; 16]> = ids.iter().map(|id| [*id; 16]).collect();
    while !waiting.is_empty() {
        let delivery = sender.delivery().await;
        let DeliveryItem::Receipt(receipt) = &delivery.item else {
            panic!("not a receipt: {delivery:?}");
        };
        for id in &receipt.client_message_ids {
            waiting.remove(id);
        }
        sender.ack(vec![delivery.id]).await;
    }
}

/// The same device (Noise key, address, id) connected again to `server`; its prekey keys
/// stay with `client` (these tests upload none).
async fn same_device(client: &TestClient, server: &TestServer) -> TestClient {
    let mut again = TestClient::connect(server, client.noise.clone()).await;
    again.address = client.address.clone();
    again.device_id = client.device_id;
    again
}

/// Receives `count` envelopes, acknowledging each; returns their bodies in order.
async fn receive(client: &mut TestClient, count: usize) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    for _ in 0..count {
        let delivery = client.delivery().await;
        bodies.push(body_of(&delivery.item).to_vec());
        client.ack(vec![delivery.id]).await;
    }
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_to_another_node_displaces_its_older_connection() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut alice = cluster.first.enroll("alice@example.org", 1).await;
    let mut bob_on_first = cluster.first.enroll("bob@example.org", 1).await;
    alice.notice(|n| *n == Notice::MailboxDrained).await;
    bob_on_first.notice(|n| *n == Notice::MailboxDrained).await;
    let bob = Target::of(&bob_on_first);

    // Bob, on the first node, receives and acknowledges one message.
    send(&mut alice, &bob, b"before", 1).await;
    assert_eq!(
        receive(&mut bob_on_first, 1).await,
        vec![b"before".to_vec()]
    );
    receipts_for(&mut alice, &[1]).await;

    // Bob's device connects to the second node while its first connection is still open: the
    // first connection is closed with the displacement error, as on a single node.
    let mut bob_on_second = same_device(&bob_on_first, &cluster.second).await;
    let closed = bob_on_first.closed().await;
    let error = closed.error.expect("an error frame before the close");
    assert_eq!(error.code, ErrorCode::Conflict);
    assert!(error.message.contains("took over"), "{}", error.message);
    // The acknowledged message is not delivered again.
    assert!(bob_on_second.backlog_until_drained().await.is_empty());

    // Messages sent through the first node reach bob on the second, in order, each once.
    for id in 2..=6u8 {
        send(&mut alice, &bob, format!("after {id}").as_bytes(), id).await;
    }
    let expected: Vec<Vec<u8>> = (2..=6u8)
        .map(|id| format!("after {id}").into_bytes())
        .collect();
    assert_eq!(receive(&mut bob_on_second, 5).await, expected);
    bob_on_second.expect_no_delivery().await;
    receipts_for(&mut alice, &[2, 3, 4, 5, 6]).await;

    // And back: connecting to the first node again displaces the second connection.
    let mut bob_back = same_device(&bob_on_second, &cluster.first).await;
    let closed = bob_on_second.closed().await;
    assert_eq!(
        closed.error.expect("an error frame").code,
        ErrorCode::Conflict
    );
    assert!(bob_back.backlog_until_drained().await.is_empty());
    send(&mut alice, &bob, b"back", 7).await;
    assert_eq!(receive(&mut bob_back, 1).await, vec![b"back".to_vec()]);
    bob_back.expect_no_delivery().await;

    drop((alice, bob_back));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connecting_to_two_nodes_at_once_keeps_exactly_one_connection() {
    /// Long enough for a displacement to cross NATS, short enough for a test.
    const SETTLE: Duration = Duration::from_secs(2);
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let mut alice = cluster.first.enroll("alice@example.org", 1).await;
    alice.notice(|n| *n == Notice::MailboxDrained).await;
    let enrolled = cluster.second.enroll("bob@example.org", 1).await;
    let bob = Target::of(&enrolled);
    let mut previous = Some(enrolled);
    for round in 0..2u8 {
        // The same device connects to both nodes at the same moment (while its previous
        // connection is still open, which both displace).
        let device = previous.take().expect("a device");
        let (mut on_first, mut on_second) = tokio::join!(
            same_device(&device, &cluster.first),
            same_device(&device, &cluster.second)
        );
        drop(device);
        let (first_closed, second_closed) =
            tokio::join!(on_first.try_closed(SETTLE), on_second.try_closed(SETTLE));
        let mut survivor = match (first_closed, second_closed) {
            (Some(closed), None) => {
                assert_eq!(closed.error.expect("error").code, ErrorCode::Conflict);
                on_second
            }
            (None, Some(closed)) => {
                assert_eq!(closed.error.expect("error").code, ErrorCode::Conflict);
                on_first
            }
            (first, second) => {
                panic!("exactly one connection must be displaced: {first:?} {second:?}")
            }
        };
        // The survivor alone receives what comes next, once.
        let id = 20 + round;
        send(&mut alice, &bob, b"after the race", id).await;
        let deliveries = survivor.backlog_until_drained().await;
        let mut bodies: Vec<Vec<u8>> = deliveries
            .iter()
            .map(|delivery| body_of(&delivery.item).to_vec())
            .collect();
        if bodies.is_empty() {
            // The drained notice came before the message: it is on its way.
            bodies = receive(&mut survivor, 1).await;
        } else {
            survivor
                .ack(deliveries.iter().map(|delivery| delivery.id).collect())
                .await;
        }
        assert_eq!(bodies, vec![b"after the race".to_vec()]);
        survivor.expect_no_delivery().await;
        receipts_for(&mut alice, &[id]).await;
        previous = Some(survivor);
    }
    drop((alice, previous));
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_nodes_read_one_blob_usage_per_account_from_postgresql() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let now_ms = 1_000_000;
    let record = |id: u8, owner: &str, size: u64, expires_at_ms: u64| BlobRecord {
        id: BlobId([id; 16]),
        owner: owner.to_owned(),
        size,
        received: 0,
        expires_at_ms,
    };
    let first = &cluster.first.store;
    let second = &cluster.second.store;
    first
        .create_blob(&record(1, "alice@example.org", 1_000, now_ms + 1))
        .await
        .expect("created");
    second
        .create_blob(&record(2, "alice@example.org", 2_500, now_ms + 10))
        .await
        .expect("created");
    // Expired at `now_ms` (not yet swept): it no longer counts.
    first
        .create_blob(&record(3, "alice@example.org", 7_000, now_ms))
        .await
        .expect("created");
    first
        .create_blob(&record(4, "bob@example.org", 5, now_ms + 1))
        .await
        .expect("created");
    for store in [first, second] {
        assert_eq!(
            store
                .blob_usage("alice@example.org", now_ms)
                .await
                .expect("usage"),
            BlobUsage {
                count: 2,
                bytes: 3_500
            }
        );
        assert_eq!(
            store
                .blob_usage("carol@example.org", now_ms)
                .await
                .expect("usage"),
            BlobUsage::default()
        );
    }
    // Swept: the expiry frees the rest.
    first.expire_blobs(now_ms + 10).await.expect("expired");
    assert_eq!(
        second
            .blob_usage("alice@example.org", now_ms)
            .await
            .expect("usage"),
        BlobUsage::default()
    );
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_creations_racing_on_both_nodes_never_pass_the_quota() {
    const DEVICES_PER_NODE: usize = 3;
    const CREATIONS_EACH: usize = 4;
    const ALLOWED: usize = 5;
    let folder = tempfile::tempdir().expect("blob folder");
    let blobs = BlobStore::local(folder.path())
        .expect("blob store")
        .with_quota(BlobQuota {
            bytes: 1 << 20,
            count: ALLOWED as u64,
        });
    let Some(cluster) = Cluster::start_with(Some(blobs)).await else {
        return;
    };
    let mut devices = Vec::new();
    for _ in 0..DEVICES_PER_NODE {
        devices.push(cluster.first.enroll("dave@example.org", 1).await);
        devices.push(cluster.second.enroll("dave@example.org", 1).await);
    }
    let racing = create_blobs_racing(devices, CREATIONS_EACH, 100).await;
    assert_eq!(racing.created.len(), ALLOWED);
    assert_eq!(
        racing.refused,
        2 * DEVICES_PER_NODE * CREATIONS_EACH - ALLOWED
    );
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits");
    assert_eq!(
        cluster
            .second
            .store
            .blob_usage("dave@example.org", now_ms)
            .await
            .expect("usage"),
        BlobUsage {
            count: ALLOWED as u64,
            bytes: 100 * ALLOWED as u64
        }
    );
    drop(racing);
    cluster.finish().await;
}
