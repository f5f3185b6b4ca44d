//! `confianza-server`: the CA/RA operator commands and the messaging service.
//!
//! ```text
//! confianza-server --data DIR init --org "Example Org" [--name chat.example.org] …
//! confianza-server --data DIR ra enroll-code alice@example.org
//! confianza-server --data DIR ca issue --csr req.pem --profile tls-server --out cert.pem
//! confianza-server --data DIR run [--listen 127.0.0.1:7443] [--http 127.0.0.1:8443]
//! CONFIANZA_RUNTIME_THREADS=4 confianza-server --data DIR run …   # see `main`
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use confianza_server::ops::{self, CaCommand, Context, InitArgs, RaCommand};
use confianza_server::service;

/// The process's allocator. Under load glibc's malloc and free took about a tenth of the
/// server's CPU (every frame, body and row is a short-lived buffer, freed on another task or
/// thread than the one that made it); mimalloc's per-thread free lists cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Confianza's server: certification authority, registration authority, messaging.
#[derive(Debug, Parser)]
#[command(name = "confianza-server", version)]
struct Cli {
    /// The data directory
    #[arg(long, env = "CONFIANZA_DATA", global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the CA (root, intermediate, OCSP signer, RA officer, Noise key) in the data directory
    Init(InitArgs),
    /// Registration Authority: enrollment codes, expiring certificates, officers
    #[command(subcommand)]
    Ra(RaCommand),
    /// Certification Authority: issue, revoke, CRL, chain, list, show, export, offline root
    #[command(subcommand)]
    Ca(CaCommand),
    /// Serve clients (Noise over TCP) and the HTTP repository
    Run(service::RunArgs),
    /// Load generator on 127.0.0.1: messages/s, latency, server CPU, held connections
    Loadtest(confianza_server::loadtest::LoadtestArgs),
}

/// Worker threads of the service's runtime (`run`); unset or `0`: one fewer than the machine's
/// cores, at least one (see [`main`]).
const RUNTIME_THREADS_VARIABLE: &str = "CONFIANZA_RUNTIME_THREADS";

/// `run` leaves one core to the message store's own thread (SQLite's work) and serves
/// connections from the others: on a 2-core machine that is **one** runtime thread polling
/// every connection in turn, which wakes no other thread per task hand-off (worker threads that
/// wake and steal from each other spent ≈10 % more CPU per relayed message there, see
/// BENCHMARKS.md). `CONFIANZA_RUNTIME_THREADS=N` sets the number of workers (1: one thread).
/// The other commands keep tokio's multi-thread default.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match &cli.command {
        Command::Run(_) => service_runtime(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("confianza-server: error: starting the runtime: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime `run` serves on (see [`main`]).
fn service_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let threads = match std::env::var(RUNTIME_THREADS_VARIABLE) {
        Ok(value) => value.trim().parse::<usize>().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{RUNTIME_THREADS_VARIABLE} must be a number of threads, not {value:?}"),
            )
        })?,
        Err(_) => 0,
    };
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1))
    } else {
        threads
    };
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

async fn run(cli: Cli) -> ExitCode {
    // The load test needs no data directory with --embedded: it runs before the check.
    let command = match cli.command {
        Command::Loadtest(args) => {
            return match confianza_server::loadtest::run(cli.data, args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("confianza-server: error: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        command => command,
    };
    let Some(data) = cli.data else {
        eprintln!("confianza-server: error: --data DIR (or CONFIANZA_DATA) is required");
        return ExitCode::from(2);
    };
    let ctx = Context {
        data: data.clone(),
        database_url: std::env::var("CONFIANZA_DATABASE_URL").ok(),
    };
    let result = match command {
        Command::Init(args) => ops::init(&ctx, args).await.map_err(|e| e.to_string()),
        Command::Ra(command) => ops::ra(&ctx, command).await.map_err(|e| e.to_string()),
        Command::Ca(command) => ops::ca(&ctx, command).await.map_err(|e| e.to_string()),
        Command::Run(args) => service::run(data, args).await.map_err(|e| format!("{e:#}")),
        Command::Loadtest(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("confianza-server: error: {message}");
            ExitCode::FAILURE
        }
    }
}
