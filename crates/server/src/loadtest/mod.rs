//! `confianza-server loadtest`: a load generator for the messaging service, on 127.0.0.1 only.
//!
//! ```text
//! confianza-server loadtest --embedded --clients 100 --messages 200000
//! confianza-server --data DIR loadtest --server 127.0.0.1:7443 --server-pid PID --clients 1000 --duration 20
//! confianza-server loadtest --embedded --offline --clients 100 --messages 200000
//! (ulimit -n 20000; confianza-server --data DIR loadtest --server 127.0.0.1:7443 --connections 10000)
//! ```
//!
//! Every device is enrolled for real (an RA code from the data directory, a certificate from
//! its CA), connects over Noise and speaks the API. Three modes:
//!
//! * **relay** (default): N connected clients send to each other (client *i* to every other
//!   in turn), each with up to `--window` sends in flight, and acknowledge what they receive.
//!   Reported: messages/s durably accepted (a send counts when its `Sent` arrives, which the
//!   server answers after its commit, or after the recipient acknowledged a message relayed
//!   live), delivery latency p50/p99 (send → delivered), acceptance latency, and server CPU
//!   per message.
//! * **offline** (`--offline`): N senders and N recipients that are enrolled, then
//!   disconnected: stored messages/s.
//! * **connections** (`--connections N`): N enrolled devices hold idle connections for
//!   `--duration` seconds; then each asks `WhoAmI`, and the answers count the connections
//!   still served.
//!
//! Server CPU comes from `/proc/PID/stat` before and after the measured phase: `--server-pid`
//! for a server process; with `--embedded` only the whole process (server and clients
//! together) can be measured, and the report says so.

pub mod client;
mod stats;
mod target;
mod traffic;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use confianza_api::RequestBody;
use confianza_api::limits::MAX_MESSAGE_BODY_LEN;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::client::ClientError;
use self::stats::{ClientTally, format_us, process_cpu, quantile};
use self::target::{EnrolledDevice, Target};
use self::traffic::{BODY_HEADER_LEN, Budget, Plan, Progress, Recipient};
use crate::authority::AuthorityError;
use crate::service::limits::MAX_QUEUE_PER_DEVICE;

/// Most load clients (relay and offline modes). Each is a real enrolled device; more than
/// this is a connection test, not a message test.
pub const MAX_CLIENTS: usize = 10_000;
/// Most idle connections of `--connections` (the issue's goal is 10 000; each costs a file
/// descriptor on both sides).
pub const MAX_HELD_CONNECTIONS: usize = 20_000;
/// Longest `--duration`, seconds.
pub const MAX_DURATION_SECS: u64 = 600;
/// Most messages of `--messages`.
pub const MAX_MESSAGES: u64 = 10_000_000;
/// Most sends one client keeps in flight.
pub const MAX_WINDOW: usize = 1_024;
/// Enrollments running at once (each one CA issuance and a few commits on the server).
const ENROLL_CONCURRENCY: usize = 32;
/// How long the run waits for deliveries after the last send was accepted.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the run waits for the receipts of the last deliveries after they arrived.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a held connection may take to answer `WhoAmI`.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(30);
/// The duration when neither `--duration` nor `--messages` is given.
const DEFAULT_DURATION_SECS: u64 = 10;

/// Options of `confianza-server loadtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadtestArgs {
    /// A running server's Noise listener (127.0.0.1 only); --data names its data directory
    #[arg(
        long,
        conflicts_with = "embedded",
        required_unless_present = "embedded"
    )]
    pub server: Option<SocketAddr>,
    /// Start a service in this process on a temporary data directory (SQLite)
    #[arg(long)]
    pub embedded: bool,
    /// Connected clients (relay), or senders and as many offline recipients (--offline)
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Send for this many seconds [default: 10 unless --messages]
    #[arg(long, conflicts_with = "messages")]
    pub duration: Option<u64>,
    /// Send this many messages in all
    #[arg(long)]
    pub messages: Option<u64>,
    /// Message body size in bytes (at least 16: a timestamp and a sequence number)
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// Sends in flight per client
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Store-only: recipients are offline; measures stored messages/s
    #[arg(long, conflicts_with = "connections")]
    pub offline: bool,
    /// Hold this many idle authenticated connections for --duration seconds and count the
    /// ones still served
    #[arg(long)]
    pub connections: Option<usize>,
    /// The server's process id, for its CPU time from /proc/PID/stat
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// The load test could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadtestError {
    /// The options do not make a run.
    #[error("{0}")]
    Arguments(String),
    /// The data directory's CA (codes, keys).
    #[error("data directory: {0}")]
    Authority(#[from] AuthorityError),
    /// Setting up the server.
    #[error("setting up: {0}")]
    Setup(String),
    /// A file or socket.
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    /// A load client failed before the measurement started.
    #[error("{0}")]
    Client(#[from] ClientError),
}

/// What to run, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Relay,
    Offline,
    Connections(usize),
}

impl LoadtestArgs {
    fn mode(&self) -> Result<Mode, LoadtestError> {
        let bad = |text: String| Err(LoadtestError::Arguments(text));
        if let Some(duration) = self.duration
            && !(1..=MAX_DURATION_SECS).contains(&duration)
        {
            return bad(format!(
                "--duration must be 1 ..= {MAX_DURATION_SECS} seconds"
            ));
        }
        if let Some(held) = self.connections {
            if !(1..=MAX_HELD_CONNECTIONS).contains(&held) {
                return bad(format!(
                    "--connections must be 1 ..= {MAX_HELD_CONNECTIONS}"
                ));
            }
            return Ok(Mode::Connections(held));
        }
        let minimum_clients = if self.offline { 1 } else { 2 };
        if !(minimum_clients..=MAX_CLIENTS).contains(&self.clients) {
            return bad(format!(
                "--clients must be {minimum_clients} ..= {MAX_CLIENTS}"
            ));
        }
        if !(BODY_HEADER_LEN..=MAX_MESSAGE_BODY_LEN).contains(&self.payload) {
            return bad(format!(
                "--payload must be {BODY_HEADER_LEN} ..= {MAX_MESSAGE_BODY_LEN} bytes"
            ));
        }
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return bad(format!("--window must be 1 ..= {MAX_WINDOW}"));
        }
        if let Some(messages) = self.messages {
            if !(1..=MAX_MESSAGES).contains(&messages) {
                return bad(format!("--messages must be 1 ..= {MAX_MESSAGES}"));
            }
            // Offline recipients keep everything: stay within their mailbox limit.
            let per_recipient = messages.div_ceil(self.clients as u64);
            if self.offline && per_recipient > MAX_QUEUE_PER_DEVICE {
                return bad(format!(
                    "--offline --messages {messages} puts {per_recipient} messages in each of \
                     {} mailboxes; the limit is {MAX_QUEUE_PER_DEVICE}: add --clients",
                    self.clients
                ));
            }
        }
        Ok(if self.offline {
            Mode::Offline
        } else {
            Mode::Relay
        })
    }
}

/// Runs the load test and prints its report. `data` is the data directory of `--server`.
///
/// Against a `--server`, the clients run on one thread of their own (a current-thread
/// runtime): the generator shares the machine's cores with the server it measures, and one
/// thread polling every connection in turn costs less per message than worker threads that
/// wake and steal from each other. With `--embedded` the service runs in this process and
/// keeps the caller's multi-thread runtime.
pub async fn run(data: Option<PathBuf>, args: LoadtestArgs) -> Result<(), LoadtestError> {
    if args.embedded {
        return run_here(data, args).await;
    }
    let (outcome_tx, outcome_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("loadtest".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| LoadtestError::Io {
                    what: "starting the load clients' runtime",
                    source,
                })
                .and_then(|runtime| runtime.block_on(run_here(data, args)));
            // The receiver waits for this; if it is gone there is no one left to tell.
            let _ = outcome_tx.send(outcome);
        })
        .map_err(|source| LoadtestError::Io {
            what: "starting the load clients' thread",
            source,
        })?;
    outcome_rx.await.map_err(|_| {
        LoadtestError::Setup("the load clients' thread stopped without a result".into())
    })?
}

async fn run_here(data: Option<PathBuf>, args: LoadtestArgs) -> Result<(), LoadtestError> {
    let mode = args.mode()?;
    let target = match (args.server, args.embedded) {
        (Some(addr), false) => {
            let data = data.ok_or_else(|| {
                LoadtestError::Arguments(
                    "--server needs --data DIR (the server's data directory) for enrollment codes"
                        .into(),
                )
            })?;
            Target::remote(addr, &data).await?
        }
        (None, true) => Target::embedded().await?,
        _ => {
            return Err(LoadtestError::Arguments(
                "give exactly one of --server ADDR and --embedded".into(),
            ));
        }
    };
    let target = Arc::new(target);
    let outcome = match mode {
        Mode::Relay | Mode::Offline => messages(&target, &args, mode).await,
        Mode::Connections(held) => connections(&target, &args, held).await,
    };
    // Every task holding the target has ended by now.
    if let Ok(target) = Arc::try_unwrap(target) {
        target.shutdown().await;
    }
    outcome
}

/// A random tag of this run, in device addresses and client message ids.
fn run_salt() -> [u8; 4] {
    let mut salt = [0u8; 4];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut salt);
    salt
}

/// Enrolls `count` devices of this run (index from `first`), `ENROLL_CONCURRENCY` at a
/// time; returns them in index order.
async fn enroll_many(
    target: &Arc<Target>,
    run: &str,
    first: usize,
    count: usize,
) -> Result<Vec<EnrolledDevice>, LoadtestError> {
    let permits = Arc::new(Semaphore::new(ENROLL_CONCURRENCY));
    let mut tasks = JoinSet::new();
    for index in first..first + count {
        let target = target.clone();
        let permits = permits.clone();
        let address = target.address(run, index);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (index, target.enroll(&address).await)
        });
    }
    let mut devices: Vec<Option<EnrolledDevice>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (index, enrolled) = joined
            .map_err(|error| LoadtestError::Setup(format!("an enrollment task failed: {error}")))?;
        if let Some(slot) = devices.get_mut(index - first) {
            *slot = Some(enrolled?);
        }
    }
    devices
        .into_iter()
        .map(|device| device.ok_or_else(|| LoadtestError::Setup("a device is missing".into())))
        .collect()
}

/// CPU time of the measured process, and what it covers.
struct CpuProbe {
    pid: u32,
    what: &'static str,
}

impl CpuProbe {
    fn new(target: &Target, args: &LoadtestArgs) -> Option<Self> {
        match args.server_pid {
            Some(pid) => Some(Self {
                pid,
                what: "server process",
            }),
            None if target.is_embedded() => Some(Self {
                pid: std::process::id(),
                what: "whole process: server AND load clients (use --server-pid for the server alone)",
            }),
            None => None,
        }
    }

    fn read(&self) -> Result<Duration, LoadtestError> {
        process_cpu(self.pid).map_err(|source| LoadtestError::Io {
            what: "reading /proc/PID/stat",
            source,
        })
    }
}

async fn messages(
    target: &Arc<Target>,
    args: &LoadtestArgs,
    mode: Mode,
) -> Result<(), LoadtestError> {
    let run = hex::encode(run_salt());
    let salt = run_salt();
    let clients = args.clients;
    let setup_started = Instant::now();
    let senders = enroll_many(target, &run, 0, clients).await?;
    let (recipients, skip_self): (Vec<Recipient>, bool) = match mode {
        Mode::Offline => {
            let offline = enroll_many(target, &run, clients, clients).await?;
            let mut list = Vec::with_capacity(clients);
            for device in offline {
                list.push(Recipient {
                    address: device.address,
                    device_id: device.device_id,
                    registration_id: device.registration_id,
                });
                device.connection.close().await;
            }
            (list, false)
        }
        _ => (
            senders
                .iter()
                .map(|device| Recipient {
                    address: device.address.clone(),
                    device_id: device.device_id,
                    registration_id: device.registration_id,
                })
                .collect(),
            true,
        ),
    };
    let recipients = Arc::new(recipients);
    let enrolled = senders.len() + if skip_self { 0 } else { recipients.len() };
    println!(
        "enrolled {enrolled} devices in {:.1} s",
        setup_started.elapsed().as_secs_f64()
    );

    let probe = CpuProbe::new(target, args);
    let progress = Arc::new(Progress::default());
    let stop = CancellationToken::new();
    let epoch = Instant::now();
    let cpu_before = probe.as_ref().map(CpuProbe::read).transpose()?;
    // The load generator's own CPU: it shares the machine with the server, so it must stay
    // well below the server's cost to measure it.
    let own = (args.server_pid.is_some()).then(|| CpuProbe {
        pid: std::process::id(),
        what: "load generator process",
    });
    let own_before = own.as_ref().map(CpuProbe::read).transpose()?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let total_messages = args.messages;
    for (index, device) in senders.into_iter().enumerate() {
        let budget = match total_messages {
            Some(total) => {
                let share =
                    total / clients as u64 + u64::from((index as u64) < total % clients as u64);
                Budget::Messages(share)
            }
            None => Budget::Until(
                started + Duration::from_secs(args.duration.unwrap_or(DEFAULT_DURATION_SECS)),
            ),
        };
        let plan = Plan {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            recipients: recipients.clone(),
            skip: skip_self.then_some(index),
            budget,
            payload: args.payload,
            window: args.window,
            run_salt: salt,
            epoch,
        };
        tasks.spawn(traffic::drive(
            device.connection,
            plan,
            progress.clone(),
            stop.clone(),
        ));
    }

    // Wait for every sender, then (relay) for every accepted message to be delivered.
    while progress.senders_done.load(Ordering::Relaxed) < clients as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent_by = Instant::now();
    if mode == Mode::Relay {
        let deadline = sent_by + DRAIN_TIMEOUT;
        while progress.delivered.load(Ordering::Relaxed) < progress.accepted.load(Ordering::Relaxed)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Receipts for the last deliveries reach their senders a moment later.
        let deadline = Instant::now() + RECEIPT_TIMEOUT;
        while progress.receipted.load(Ordering::Relaxed)
            < progress.delivered.load(Ordering::Relaxed)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let cpu_after = probe.as_ref().map(CpuProbe::read).transpose()?;
    let own_after = own.as_ref().map(CpuProbe::read).transpose()?;
    let finished = Instant::now();
    stop.cancel();
    let mut tally = ClientTally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(client) => tally.merge(client),
            Err(error) => tally.failure = Some(format!("a client task failed: {error}")),
        }
    }

    let send_phase = tally
        .last_accepted
        .unwrap_or(sent_by)
        .saturating_duration_since(started);
    let rate = |count: u64, over: Duration| count as f64 / over.as_secs_f64().max(1e-9);
    let label = if mode == Mode::Relay {
        "relay"
    } else {
        "offline store"
    };
    println!(
        "{label}: {clients} clients, payload {} B, window {}",
        args.payload, args.window
    );
    println!(
        "accepted (Sent: committed, or acknowledged live): {} messages in {:.2} s = {:.0} msg/s",
        tally.accepted,
        send_phase.as_secs_f64(),
        rate(tally.accepted, send_phase)
    );
    println!(
        "accept latency (send → Sent): p50 {} p99 {}",
        format_us(quantile(&mut tally.accept_latency_us, 0.50)),
        format_us(quantile(&mut tally.accept_latency_us, 0.99)),
    );
    if mode == Mode::Relay {
        let delivery_phase = tally
            .last_delivered
            .unwrap_or(finished)
            .saturating_duration_since(started);
        println!(
            "delivered: {} of {} ({:.0} msg/s); receipts back for {} messages",
            tally.delivered,
            tally.accepted,
            rate(tally.delivered, delivery_phase),
            tally.receipts
        );
        println!(
            "delivery latency (send → delivered): p50 {} p99 {}",
            format_us(quantile(&mut tally.delivery_latency_us, 0.50)),
            format_us(quantile(&mut tally.delivery_latency_us, 0.99)),
        );
    }
    if tally.duplicates > 0 {
        println!("duplicates: {}", tally.duplicates);
    }
    for (code, count) in &tally.refused {
        println!("refused {code}: {count}");
    }
    if let (Some(probe), Some(before), Some(after)) = (&probe, cpu_before, cpu_after) {
        let used = after.saturating_sub(before);
        println!(
            "CPU ({}): {:.2} s over {:.2} s = {:.1} µs per accepted message",
            probe.what,
            used.as_secs_f64(),
            finished.saturating_duration_since(started).as_secs_f64(),
            used.as_secs_f64() * 1e6 / tally.accepted.max(1) as f64
        );
    }
    if let (Some(own), Some(before), Some(after)) = (&own, own_before, own_after) {
        let used = after.saturating_sub(before);
        println!(
            "CPU ({}): {:.2} s = {:.1} µs per accepted message",
            own.what,
            used.as_secs_f64(),
            used.as_secs_f64() * 1e6 / tally.accepted.max(1) as f64
        );
    }
    if let Some(failure) = &tally.failure {
        println!("a client stopped early: {failure}");
    }
    Ok(())
}

async fn connections(
    target: &Arc<Target>,
    args: &LoadtestArgs,
    held: usize,
) -> Result<(), LoadtestError> {
    let run = hex::encode(run_salt());
    let hold = Duration::from_secs(args.duration.unwrap_or(DEFAULT_DURATION_SECS));
    let started = Instant::now();
    let devices = enroll_many(target, &run, 0, held).await?;
    let enrolled_in = started.elapsed();
    println!(
        "enrolled and connected {} devices in {:.1} s ({:.0} per second)",
        devices.len(),
        enrolled_in.as_secs_f64(),
        devices.len() as f64 / enrolled_in.as_secs_f64().max(1e-9)
    );
    let probe = CpuProbe::new(target, args);
    let cpu_before = probe.as_ref().map(CpuProbe::read).transpose()?;
    tokio::time::sleep(hold).await;
    let cpu_after = probe.as_ref().map(CpuProbe::read).transpose()?;

    // Every connection asks who it is; an answer proves the server still serves it.
    let mut tasks = JoinSet::new();
    for mut device in devices {
        tasks.spawn(async move {
            let asked = tokio::time::timeout(
                LIVENESS_TIMEOUT,
                device.connection.request(RequestBody::WhoAmI),
            )
            .await;
            let alive = matches!(asked, Ok(Ok(_)));
            (alive, device)
        });
    }
    let mut alive = 0usize;
    let mut kept = Vec::with_capacity(held);
    while let Some(joined) = tasks.join_next().await {
        if let Ok((up, device)) = joined {
            alive += usize::from(up);
            kept.push(device);
        }
    }
    println!(
        "connections: {alive} of {held} still served after {} s idle",
        hold.as_secs()
    );
    if let (Some(probe), Some(before), Some(after)) = (&probe, cpu_before, cpu_after) {
        println!(
            "CPU while idle ({}): {:.2} s over {} s",
            probe.what,
            after.saturating_sub(before).as_secs_f64(),
            hold.as_secs()
        );
    }
    for device in kept {
        device.connection.close().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> LoadtestArgs {
        LoadtestArgs {
            server: None,
            embedded: true,
            clients: 100,
            duration: None,
            messages: None,
            payload: 256,
            window: 16,
            offline: false,
            connections: None,
            server_pid: None,
        }
    }

    fn refused(args: &LoadtestArgs) -> bool {
        matches!(args.mode(), Err(LoadtestError::Arguments(_)))
    }

    #[test]
    fn clients_up_to_the_limit() {
        assert_eq!(
            LoadtestArgs {
                clients: MAX_CLIENTS,
                ..args()
            }
            .mode()
            .ok(),
            Some(Mode::Relay)
        );
        assert!(refused(&LoadtestArgs {
            clients: MAX_CLIENTS + 1,
            ..args()
        }));
        // Relay needs someone to talk to; offline senders do not.
        assert!(refused(&LoadtestArgs {
            clients: 1,
            ..args()
        }));
        assert_eq!(
            LoadtestArgs {
                clients: 1,
                offline: true,
                ..args()
            }
            .mode()
            .ok(),
            Some(Mode::Offline)
        );
    }

    #[test]
    fn held_connections_up_to_the_limit() {
        let held = |n| LoadtestArgs {
            connections: Some(n),
            ..args()
        };
        assert_eq!(
            held(MAX_HELD_CONNECTIONS).mode().ok(),
            Some(Mode::Connections(MAX_HELD_CONNECTIONS))
        );
        assert!(refused(&held(MAX_HELD_CONNECTIONS + 1)));
        assert!(refused(&held(0)));
    }

    #[test]
    fn duration_messages_payload_and_window_are_bounded() {
        assert!(
            LoadtestArgs {
                duration: Some(MAX_DURATION_SECS),
                ..args()
            }
            .mode()
            .is_ok()
        );
        assert!(refused(&LoadtestArgs {
            duration: Some(MAX_DURATION_SECS + 1),
            ..args()
        }));
        assert!(refused(&LoadtestArgs {
            duration: Some(0),
            ..args()
        }));
        assert!(
            LoadtestArgs {
                messages: Some(MAX_MESSAGES),
                ..args()
            }
            .mode()
            .is_ok()
        );
        assert!(refused(&LoadtestArgs {
            messages: Some(MAX_MESSAGES + 1),
            ..args()
        }));
        assert!(
            LoadtestArgs {
                payload: MAX_MESSAGE_BODY_LEN,
                ..args()
            }
            .mode()
            .is_ok()
        );
        assert!(refused(&LoadtestArgs {
            payload: MAX_MESSAGE_BODY_LEN + 1,
            ..args()
        }));
        assert!(
            LoadtestArgs {
                payload: BODY_HEADER_LEN,
                ..args()
            }
            .mode()
            .is_ok()
        );
        assert!(refused(&LoadtestArgs {
            payload: BODY_HEADER_LEN - 1,
            ..args()
        }));
        assert!(
            LoadtestArgs {
                window: MAX_WINDOW,
                ..args()
            }
            .mode()
            .is_ok()
        );
        assert!(refused(&LoadtestArgs {
            window: MAX_WINDOW + 1,
            ..args()
        }));
    }

    #[test]
    fn offline_messages_fit_the_recipients_mailboxes() {
        let offline = |messages| LoadtestArgs {
            clients: 10,
            offline: true,
            messages: Some(messages),
            ..args()
        };
        assert!(offline(10 * MAX_QUEUE_PER_DEVICE).mode().is_ok());
        assert!(refused(&offline(10 * MAX_QUEUE_PER_DEVICE + 1)));
    }

    #[tokio::test]
    async fn only_loopback_servers_are_targets() {
        let data = std::env::temp_dir();
        let remote = Target::remote("192.0.2.1:7443".parse().expect("address"), &data).await;
        assert!(matches!(remote, Err(LoadtestError::Arguments(_))));
    }

    #[test]
    fn message_ids_are_unique_per_client_and_sequence() {
        let salt = [1, 2, 3, 4];
        assert_ne!(
            traffic::message_id(salt, 0, 1),
            traffic::message_id(salt, 1, 0)
        );
        assert_ne!(
            traffic::message_id(salt, 0, 1),
            traffic::message_id(salt, 0, 2)
        );
        assert_ne!(
            traffic::message_id(salt, 0, 1),
            traffic::message_id([0; 4], 0, 1)
        );
    }
}
