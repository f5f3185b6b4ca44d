//! Crash test: the real `confianza-server` binary is killed with SIGKILL several times while
//! clients send 10 000 uniquely numbered messages; senders retry every unacknowledged send
//! with the same client message id after reconnecting. Afterwards the recipients drain their
//! mailboxes: every message whose send was acknowledged is delivered exactly once.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use confianza_api::{
    CiphertextType, DeliveryItem, Notice, OutgoingEnvelope, RequestBody, Response, ResponseBody,
    ServerFrame,
};
use confianza_server::authority::Authority;
use confianza_server::loadtest::client::{Connection, DeviceKeys, ServerPin};
use rand::rngs::StdRng;

/// Messages sent in all, numbered 0 .. MESSAGES.
const MESSAGES: u32 = 10_000;
/// Sending devices; message `n` is sent by sender `n % SENDERS`.
const SENDERS: u32 = 4;
/// Receiving devices; message `n` goes to recipient `n % RECIPIENTS` (5 000 each, within
/// the mailbox limit).
const RECIPIENTS: u32 = 2;
/// Sends one sender keeps in flight.
const WINDOW: usize = 64;
/// The server is killed when this many sends have been acknowledged, one kill each.
const KILL_AT: [u64; 4] = [1_500, 3_500, 5_500, 7_500];
/// The whole test must finish within this (CI runs debug builds).
const BUDGET: Duration = Duration::from_secs(120);

/// The server process, restarted on the same data directory and port.
struct Server {
    data: tempfile::TempDir,
    listen: SocketAddr,
    http: SocketAddr,
    child: Option<Child>,
}

impl Server {
    fn init() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let status = Command::new(env!("CARGO_BIN_EXE_confianza-server"))
            .arg("--data")
            .arg(data.path())
            .args([
                "init",
                "--no-passphrase",
                "--org",
                "Crash Test Org",
                "--name",
                "chat.example.org",
                "--domain",
                "example.org",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("init runs");
        assert!(status.success(), "init failed");
        Self {
            data,
            listen: free_port(),
            http: free_port(),
            child: None,
        }
    }

    fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_confianza-server"))
            .arg("--data")
            .arg(self.data.path())
            .arg("run")
            .arg("--listen")
            .arg(self.listen.to_string())
            .arg("--http")
            .arg(self.http.to_string())
            .args(["--log", "warn"])
            .env_remove("CONFIANZA_DATABASE_URL")
            .stdout(Stdio::null())
            .spawn()
            .expect("server starts");
        self.child = Some(child);
    }

    /// SIGKILL: no graceful shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9");
            child.wait().expect("reaped");
        }
    }

    fn dir(&self) -> &Path {
        self.data.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// Connects, retrying while the server is down or restarting.
async fn connect(addr: SocketAddr, keys: &DeviceKeys, pin: &ServerPin) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match Connection::connect(addr, &keys.noise, pin).await {
            Ok(connection) => return connection,
            Err(error) => {
                assert!(Instant::now() < deadline, "server unreachable: {error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

struct Device {
    address: String,
    device_id: u32,
    registration_id: u32,
    keys: DeviceKeys,
}

async fn enroll(authority: &Authority, addr: SocketAddr, pin: &ServerPin, address: &str) -> Device {
    let code = authority
        .create_enrollment_code(address, Duration::from_secs(3_600), SystemTime::now())
        .await
        .expect("code");
    let mut rng: StdRng = rand::make_rng();
    let keys = DeviceKeys::generate(&mut rng);
    let mut connection = connect(addr, &keys, pin).await;
    let device_id = connection
        .enroll(address, code.as_str(), &keys, &mut rng)
        .await
        .expect("enrolled");
    connection.close().await;
    Device {
        address: address.to_owned(),
        device_id,
        registration_id: keys.registration_id,
        keys,
    }
}

fn client_message_id(number: u32) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(b"crsh");
    id[12..].copy_from_slice(&number.to_be_bytes());
    id
}

/// Sends `numbers` until each is acknowledged (`Sent`), reconnecting and resending the
/// unacknowledged ones (same client message id) whenever the connection breaks.
async fn send_all(
    addr: SocketAddr,
    pin: ServerPin,
    me: Device,
    recipients: Arc<Vec<(String, u32, u32)>>,
    numbers: Vec<u32>,
    acknowledged: Arc<AtomicU64>,
) -> (BTreeSet<u32>, u32) {
    let mut pending: BTreeSet<u32> = numbers.into_iter().collect();
    let mut done = BTreeSet::new();
    let mut reconnects = 0;
    while !pending.is_empty() {
        let mut connection = connect(addr, &me.keys, &pin).await;
        let mut queue: Vec<u32> = pending.iter().rev().copied().collect();
        let mut in_flight: HashMap<u64, u32> = HashMap::new();
        let broken = loop {
            while in_flight.len() < WINDOW
                && let Some(number) = queue.pop()
            {
                let (address, device_id, registration_id) =
                    &recipients[(number % RECIPIENTS) as usize];
                let mut body = b"crash test message ".to_vec();
                body.extend_from_slice(&number.to_be_bytes());
                let request = RequestBody::Send {
                    recipient: address.clone(),
                    envelopes: vec![OutgoingEnvelope {
                        device_id: *device_id,
                        registration_id: *registration_id,
                        ciphertext_type: CiphertextType::Whisper,
                        body,
                        client_message_id: client_message_id(number),
                    }],
                };
                match connection.send_request(request).await {
                    Ok(id) => {
                        in_flight.insert(id, number);
                    }
                    Err(_) => break,
                }
            }
            if in_flight.is_empty() && queue.is_empty() {
                break false;
            }
            match connection.next_frame().await {
                Ok((ServerFrame::Response(Response { id, result }), _)) => {
                    let Some(number) = in_flight.remove(&id) else {
                        continue;
                    };
                    match result {
                        Ok(ResponseBody::Sent {
                            accepted,
                            duplicates,
                            ..
                        }) => {
                            assert_eq!(accepted + duplicates, 1, "one envelope per send");
                            pending.remove(&number);
                            done.insert(number);
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        // Refused (the server shutting down, a full queue): retried later.
                        Ok(other) => panic!("unexpected answer {other:?}"),
                        Err(_) => queue.push(number),
                    }
                }
                Ok(_) => {}
                Err(_) => break true,
            }
        };
        if broken {
            reconnects += 1;
        } else {
            connection.close().await;
        }
    }
    (done, reconnects)
}

/// Drains `device`'s mailbox: every delivery is acknowledged; returns the message numbers in
/// delivery order.
async fn drain(addr: SocketAddr, pin: &ServerPin, device: &Device) -> Vec<u32> {
    let mut connection = connect(addr, &device.keys, pin).await;
    let mut numbers = Vec::new();
    let mut drained = false;
    loop {
        // After MailboxDrained, a short silence means nothing more is coming.
        let patience = if drained {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(30)
        };
        let frame = tokio::time::timeout(patience, connection.next_frame()).await;
        let (frame, _) = match frame {
            Err(_) if drained => break,
            Err(_) => panic!("the mailbox never drained"),
            Ok(frame) => frame.expect("connection stays up"),
        };
        let mut acks = Vec::new();
        let mut next = Some(frame);
        while let Some(frame) = next.take() {
            match frame {
                ServerFrame::Delivery(delivery) => {
                    acks.push(delivery.id);
                    let DeliveryItem::Envelope(envelope) = delivery.item else {
                        panic!("a recipient gets no receipts here");
                    };
                    let tail = envelope
                        .body
                        .strip_prefix(b"crash test message ".as_slice())
                        .expect("a numbered body");
                    let number = u32::from_be_bytes(tail.try_into().expect("4 bytes"));
                    assert_eq!(envelope.client_message_id, client_message_id(number));
                    numbers.push(number);
                }
                ServerFrame::Notice(Notice::MailboxDrained) => drained = true,
                _ => {}
            }
            if acks.len() >= confianza_api::limits::MAX_ACKS_PER_FRAME {
                break;
            }
            next = connection.try_next_frame().map(|(frame, _)| frame);
        }
        if !acks.is_empty() {
            connection.ack(acks).await.expect("ack");
        }
    }
    connection.close().await;
    numbers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_kill_9_exactly_once() {
    let started = Instant::now();
    let mut server = Server::init();
    server.start();
    let authority = Authority::open(server.dir(), None, None)
        .await
        .expect("authority");
    let pin = ServerPin {
        static_key: authority.noise_static_public(),
        certificate: authority.noise_certificate_der(),
    };
    let addr = server.listen;

    let mut recipients = Vec::new();
    for index in 0..RECIPIENTS {
        recipients.push(
            enroll(
                &authority,
                addr,
                &pin,
                &format!("recipient{index}@example.org"),
            )
            .await,
        );
    }
    let targets = Arc::new(
        recipients
            .iter()
            .map(|d| (d.address.clone(), d.device_id, d.registration_id))
            .collect::<Vec<_>>(),
    );
    let acknowledged = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for index in 0..SENDERS {
        let me = enroll(
            &authority,
            addr,
            &pin,
            &format!("sender{index}@example.org"),
        )
        .await;
        let numbers = (0..MESSAGES).filter(|n| n % SENDERS == index).collect();
        senders.push(tokio::spawn(send_all(
            addr,
            pin.clone(),
            me,
            targets.clone(),
            numbers,
            acknowledged.clone(),
        )));
    }

    // Kill -9 at each threshold, restart at once: sends are in flight every time.
    let mut kills = 0;
    for threshold in KILL_AT {
        while acknowledged.load(Ordering::Relaxed) < threshold {
            assert!(
                started.elapsed() < BUDGET,
                "too slow: {acknowledged:?} acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill();
        kills += 1;
        server.start();
    }

    let mut acknowledged_numbers = BTreeSet::new();
    let mut reconnects = 0;
    for sender in senders {
        let (done, broken) = sender.await.expect("sender finished");
        acknowledged_numbers.extend(done);
        reconnects += broken;
    }
    assert_eq!(kills, KILL_AT.len());
    assert!(
        reconnects >= SENDERS,
        "every sender saw the server die at least once ({reconnects} reconnects)"
    );
    assert_eq!(acknowledged_numbers.len(), MESSAGES as usize);

    let mut delivered: HashMap<u32, u32> = HashMap::new();
    for (index, device) in (0..RECIPIENTS).zip(&recipients) {
        for number in drain(addr, &pin, device).await {
            assert_eq!(number % RECIPIENTS, index, "delivered to the wrong mailbox");
            *delivered.entry(number).or_default() += 1;
        }
    }
    let duplicated: Vec<_> = delivered.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicated.is_empty(),
        "delivered more than once: {duplicated:?}"
    );
    let missing: Vec<_> = acknowledged_numbers
        .iter()
        .filter(|n| !delivered.contains_key(n))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    assert_eq!(delivered.len(), MESSAGES as usize);
    assert!(started.elapsed() < BUDGET, "took {:?}", started.elapsed());
    eprintln!(
        "crash test: {MESSAGES} messages, {kills} kill -9, {reconnects} reconnects, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
