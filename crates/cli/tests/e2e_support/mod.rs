//! A real `confianza-server` process on 127.0.0.1 and `confianza` commands run as processes,
//! each user with a `CONFIANZA_HOME` of their own.
//!
//! The server binary is found beside `confianza` (build it first:
//! `cargo build -p confianza-server`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a test waits for the server to listen.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The `confianza` binary under test.
pub fn confianza_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_confianza"))
}

/// `confianza-server`, a sibling of the binary under test.
pub fn server_bin() -> PathBuf {
    let path =
        confianza_bin().with_file_name(format!("confianza-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p confianza-server` first",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The output's standard output, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The output's standard error, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `confianza-server` data directory and, while running, its process.
pub struct Server {
    pub data: tempfile::TempDir,
    pub noise: SocketAddr,
    pub http: SocketAddr,
    child: Option<Child>,
}

impl Server {
    /// Creates the CA (no passphrase) and starts serving.
    pub fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let server = Self {
            data,
            noise: SocketAddr::from(([127, 0, 0, 1], free_port())),
            http: SocketAddr::from(([127, 0, 0, 1], free_port())),
            child: None,
        };
        let out = server.admin(&[
            "init",
            "--org",
            "Example Org",
            "--name",
            "chat.example.org",
            "--domain",
            "example.org",
            "--no-passphrase",
            "--http-url",
            &format!("http://{}", server.http),
        ]);
        assert!(out.status.success(), "server init: {}", stderr(&out));
        let mut server = server;
        server.run();
        server
    }

    /// Starts the service and waits until it accepts connections.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(server_bin())
            .arg("--data")
            .arg(self.data.path())
            .args(["run", "--listen", &self.noise.to_string()])
            .args(["--http", &self.http.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("confianza-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(self.noise).is_err() {
            assert!(
                Instant::now() < deadline,
                "the server did not listen in time"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the service (the data directory stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs an operator command on the data directory.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(server_bin())
            .arg("--data")
            .arg(self.data.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("confianza-server runs")
    }

    /// A fresh enrollment code for `address`, as the RA officer would hand it out.
    pub fn code(&self, address: &str) -> String {
        let out = self.admin(&["ra", "enroll-code", address]);
        assert!(out.status.success(), "enroll-code: {}", stderr(&out));
        stdout(&out).trim().to_owned()
    }

    /// The root's SHA-256 fingerprint (hex), from the chain the CA writes.
    pub fn root_fingerprint(&self) -> String {
        let file = self.data.path().join("chain-for-test.pem");
        let out = self.admin(&["ca", "chain", "--out", file.to_str().unwrap()]);
        assert!(out.status.success(), "ca chain: {}", stderr(&out));
        let pem = std::fs::read(&file).unwrap();
        let chain = x509_cert::Certificate::load_pem_chain(&pem).unwrap();
        let root = chain.last().expect("the chain ends with the root");
        hex::encode(Sha256::digest(der::Encode::to_der(root).unwrap()))
    }

    /// Revokes `address`'s valid identity certificate as an operator would.
    pub fn revoke(&self, address: &str, reason: &str) {
        let out = self.admin(&["ca", "list", "--subject", address, "--status", "valid"]);
        assert!(out.status.success(), "ca list: {}", stderr(&out));
        let list = stdout(&out);
        let serial = list
            .lines()
            .find(|line| line.contains(address))
            .and_then(|line| line.split_whitespace().next())
            .unwrap_or_else(|| panic!("no valid certificate of {address} in:\n{list}"))
            .to_owned();
        let out = self.admin(&["ca", "revoke", &serial, "--reason", reason]);
        assert!(out.status.success(), "ca revoke: {}", stderr(&out));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a server and enrolls a user for each of `addresses`, in that order. Keep the server
/// bound to a name (`_server` will do, `_` will not): dropping it stops the service.
pub fn start_server_with_users<const N: usize>(addresses: [&str; N]) -> (Server, [User; N]) {
    let server = Server::start();
    let users = addresses.map(User::new);
    for user in &users {
        user.init(&server);
    }
    (server, users)
}

/// One user: a `CONFIANZA_HOME` of their own.
pub struct User {
    pub home: tempfile::TempDir,
    pub address: String,
}

impl User {
    pub fn new(address: &str) -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
            address: address.to_owned(),
        }
    }

    /// A `confianza` command for this user (no passphrase in the environment, stdin closed).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(confianza_bin());
        command
            .args(args)
            .env("CONFIANZA_HOME", self.home.path())
            .env_remove("CONFIANZA_PASSPHRASE")
            .env_remove("XDG_DATA_HOME")
            .stdin(Stdio::null());
        command
    }

    /// Runs `confianza ARGS` in the background while `foreground` runs (started first, so that
    /// a call placed in `foreground` finds this user answering); returns what `foreground`
    /// returned and the background command's output.
    pub fn in_background<T>(&self, args: &[&str], foreground: impl FnOnce() -> T) -> (T, Output) {
        let background = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("confianza starts");
        let result = foreground();
        let output = background.wait_with_output().expect("confianza runs");
        (result, output)
    }

    /// Runs `confianza ARGS` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("confianza runs")
    }

    /// Runs `confianza ARGS`, which must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "confianza {args:?} failed: {}{}",
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    }

    /// Runs `confianza ARGS`, which must fail with one line on standard error; returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let error = stderr(&out);
        assert!(
            !out.status.success(),
            "confianza {args:?} should fail: {}",
            stdout(&out)
        );
        assert_eq!(error.trim_end().lines().count(), 1, "one line: {error:?}");
        assert!(error.starts_with("confianza: "), "{error:?}");
        error
    }

    /// Enrolls (key file, no passphrase) on `server` with a fresh code.
    pub fn init(&self, server: &Server) -> String {
        let code = server.code(&self.address);
        self.ok(&[
            "init",
            "--server",
            &server.noise.to_string(),
            "--name",
            &self.address,
            "--code",
            &code,
            "--no-passphrase",
        ])
    }

    /// The default profile's directory.
    pub fn profile(&self) -> PathBuf {
        self.home.path().join("default")
    }
}

/// The lines of `text` that report a message from `sender`.
pub fn messages_from<'a>(text: &'a str, sender: &str) -> Vec<&'a str> {
    let marker = format!("  {sender} [");
    text.lines().filter(|line| line.contains(&marker)).collect()
}

/// SQLite's `-wal` and `-shm` files in `dir`: none once a command has closed its store.
pub fn wal_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with("-wal") || name.ends_with("-shm"))
        .collect()
}

/// Every file of `dir` with the SHA-256 of its bytes (to check nothing changed).
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let digest = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
            (path, digest)
        })
        .collect();
    files.sort();
    files
}
