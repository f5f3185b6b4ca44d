//! The configuration of `confianza-server run`: defaults, then the `[service]` table of
//! `DIR/config.toml`, then `CONFIANZA_*` environment variables, then command-line flags (each
//! later source wins).
//!
//! ```toml
//! [service]
//! listen = "127.0.0.1:7443"      # Noise over TCP
//! http = "127.0.0.1:8443"        # repository, /metrics, /healthz
//! database_url = "postgres://…"  # default: the data directory's SQLite database
//! nats_url = "nats://127.0.0.1:4222"
//! blob_url = "s3://bucket/prefix"  # default: DIR/blobs; or file:///absolute/folder
//! max_blob_size = 104857600      # bytes; default and maximum: the protocol's limit
//! blob_quota_bytes = 1073741824  # bytes one account may hold in unexpired blobs (1 GiB)
//! blob_quota_count = 10000       # unexpired blobs one account may hold
//! node_id = "node-1"
//! log_format = "json"            # or "text"
//! log = "info,confianza_server=debug"
//! ```

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::blobs::{BlobQuota, DEFAULT_BLOB_QUOTA_BYTES, DEFAULT_BLOB_QUOTA_COUNT};

/// Default Noise listener.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7443";
/// Default HTTP listener.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8443";
/// Default log filter (tracing-subscriber `EnvFilter` syntax).
pub const DEFAULT_LOG_FILTER: &str = "info";

/// Flags of `confianza-server run`; unset flags leave the file and environment values alone.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Address for client connections (Noise over TCP) [default: 127.0.0.1:7443]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address for the HTTP repository, /metrics and /healthz [default: 127.0.0.1:8443]
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// PostgreSQL URL for several nodes [default: the data directory's SQLite database]
    #[arg(long)]
    pub database_url: Option<String>,
    /// NATS URL: wake devices connected to other nodes (with PostgreSQL)
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Where attachments are kept: file:///absolute/folder or s3://bucket[/prefix] [default: DIR/blobs]
    #[arg(long)]
    pub blob_url: Option<String>,
    /// Largest attachment accepted, in bytes [default: the protocol's limit]
    #[arg(long)]
    pub max_blob_size: Option<u64>,
    /// Bytes one account may hold in unexpired attachments [default: 1073741824 (1 GiB)]
    #[arg(long)]
    pub blob_quota_bytes: Option<u64>,
    /// Unexpired attachments one account may hold [default: 10000]
    #[arg(long)]
    pub blob_quota_count: Option<u64>,
    /// This node's name in logs and metrics [default: the host name or "node"]
    #[arg(long)]
    pub node_id: Option<String>,
    /// Log format
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. "info,confianza_server=debug" [default: info]
    #[arg(long)]
    pub log: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    pub listen: SocketAddr,
    pub http: SocketAddr,
    /// `None`: the data directory's own SQLite database.
    pub database_url: Option<String>,
    pub nats_url: Option<String>,
    /// `None`: the data directory's `blobs` folder.
    pub blob_url: Option<String>,
    /// `None`: the protocol's limit.
    pub max_blob_size: Option<u64>,
    /// What one account may hold in unexpired blobs.
    pub blob_quota: BlobQuota,
    pub node_id: String,
    pub log_format: LogFormat,
    pub log_filter: String,
}

/// The configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}: {reason}")]
    Environment { name: &'static str, reason: String },
}

/// The `[service]` table of the file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileService {
    listen: Option<SocketAddr>,
    http: Option<SocketAddr>,
    database_url: Option<String>,
    nats_url: Option<String>,
    blob_url: Option<String>,
    max_blob_size: Option<u64>,
    blob_quota_bytes: Option<u64>,
    blob_quota_count: Option<u64>,
    node_id: Option<String>,
    log_format: Option<LogFormat>,
    log: Option<String>,
}

/// The file may hold other tables (the CA's); only `[service]` is read here.
#[derive(Debug, Default, Deserialize)]
struct FileRoot {
    #[serde(default)]
    service: FileService,
}

impl ServiceConfig {
    /// Loads `DIR/config.toml` (absent is fine), the process environment and `args`.
    pub fn load(data_dir: &Path, args: &RunArgs) -> Result<Self, ConfigError> {
        let path = data_dir.join("config.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        Self::resolve(
            text.as_deref(),
            &path.display().to_string(),
            |name| std::env::var(name).ok(),
            args,
        )
    }

    /// Merges the sources: `file` (TOML text), `env` (a variable lookup) and `args`.
    pub fn resolve(
        file: Option<&str>,
        file_name: &str,
        env: impl Fn(&str) -> Option<String>,
        args: &RunArgs,
    ) -> Result<Self, ConfigError> {
        let file: FileService = match file {
            Some(text) => {
                toml::from_str::<FileRoot>(text)
                    .map_err(|source| ConfigError::Parse {
                        path: file_name.to_owned(),
                        source: Box::new(source),
                    })?
                    .service
            }
            None => FileService::default(),
        };
        let env_addr = |name: &'static str| -> Result<Option<SocketAddr>, ConfigError> {
            env(name)
                .map(|value| {
                    value.parse().map_err(|_| ConfigError::Environment {
                        name,
                        reason: format!("{value:?} is not an address like 127.0.0.1:7443"),
                    })
                })
                .transpose()
        };
        let env_u64 = |name: &'static str, what: &str| -> Result<Option<u64>, ConfigError> {
            env(name)
                .map(|value| {
                    value.parse().map_err(|_| ConfigError::Environment {
                        name,
                        reason: format!("{value:?} is not a number of {what}"),
                    })
                })
                .transpose()
        };
        let env_log_format = match env("CONFIANZA_LOG_FORMAT") {
            None => None,
            Some(value) => Some(match value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Environment {
                        name: "CONFIANZA_LOG_FORMAT",
                        reason: format!("{value:?} is neither \"text\" nor \"json\""),
                    });
                }
            }),
        };
        let default_addr = |text: &str| {
            text.parse::<SocketAddr>()
                .map_err(|_| ConfigError::Environment {
                    name: "default",
                    reason: format!("{text} is not an address"),
                })
        };
        Ok(Self {
            listen: match args
                .listen
                .or(env_addr("CONFIANZA_LISTEN")?)
                .or(file.listen)
            {
                Some(addr) => addr,
                None => default_addr(DEFAULT_LISTEN)?,
            },
            http: match args.http.or(env_addr("CONFIANZA_HTTP")?).or(file.http) {
                Some(addr) => addr,
                None => default_addr(DEFAULT_HTTP)?,
            },
            database_url: args
                .database_url
                .clone()
                .or_else(|| env("CONFIANZA_DATABASE_URL"))
                .or(file.database_url),
            nats_url: args
                .nats_url
                .clone()
                .or_else(|| env("CONFIANZA_NATS_URL"))
                .or(file.nats_url),
            blob_url: args
                .blob_url
                .clone()
                .or_else(|| env("CONFIANZA_BLOB_URL"))
                .or(file.blob_url),
            max_blob_size: match args.max_blob_size {
                Some(size) => Some(size),
                None => env_u64("CONFIANZA_MAX_BLOB_SIZE", "bytes")?.or(file.max_blob_size),
            },
            blob_quota: BlobQuota {
                bytes: match args.blob_quota_bytes {
                    Some(bytes) => bytes,
                    None => env_u64("CONFIANZA_BLOB_QUOTA_BYTES", "bytes")?
                        .or(file.blob_quota_bytes)
                        .unwrap_or(DEFAULT_BLOB_QUOTA_BYTES),
                },
                count: match args.blob_quota_count {
                    Some(count) => count,
                    None => env_u64("CONFIANZA_BLOB_QUOTA_COUNT", "blobs")?
                        .or(file.blob_quota_count)
                        .unwrap_or(DEFAULT_BLOB_QUOTA_COUNT),
                },
            },
            node_id: args
                .node_id
                .clone()
                .or_else(|| env("CONFIANZA_NODE_ID"))
                .or(file.node_id)
                .or_else(|| env("HOSTNAME"))
                .unwrap_or_else(|| "node".to_owned()),
            log_format: args
                .log_format
                .or(env_log_format)
                .or(file.log_format)
                .unwrap_or_default(),
            log_filter: args
                .log
                .clone()
                .or_else(|| env("CONFIANZA_LOG"))
                .or(file.log)
                .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_apply_without_any_source() {
        let config =
            ServiceConfig::resolve(None, "config.toml", no_env, &RunArgs::default()).expect("ok");
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.http.to_string(), DEFAULT_HTTP);
        assert_eq!(config.database_url, None);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(
            config.blob_quota,
            BlobQuota {
                bytes: 1 << 30,
                count: 10_000
            }
        );
    }

    #[test]
    fn the_blob_quota_comes_from_flags_environment_or_file() {
        let file = "[service]\nblob_quota_bytes = 1000\nblob_quota_count = 7\n";
        let config =
            ServiceConfig::resolve(Some(file), "c.toml", no_env, &RunArgs::default()).expect("ok");
        assert_eq!(
            config.blob_quota,
            BlobQuota {
                bytes: 1000,
                count: 7
            }
        );

        let env = |name: &str| (name == "CONFIANZA_BLOB_QUOTA_BYTES").then(|| "2000".to_owned());
        let args = RunArgs {
            blob_quota_count: Some(9),
            ..RunArgs::default()
        };
        let config = ServiceConfig::resolve(Some(file), "c.toml", env, &args).expect("ok");
        assert_eq!(
            config.blob_quota,
            BlobQuota {
                bytes: 2000,
                count: 9
            }
        );

        let env = |name: &str| (name == "CONFIANZA_BLOB_QUOTA_COUNT").then(|| "many".to_owned());
        let error =
            ServiceConfig::resolve(None, "c.toml", env, &RunArgs::default()).expect_err("refused");
        assert!(
            error.to_string().contains("CONFIANZA_BLOB_QUOTA_COUNT"),
            "{error}"
        );
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let file = r#"
            [ca]
            organization = "Example"
            [service]
            listen = "127.0.0.1:1000"
            http = "127.0.0.1:2000"
            node_id = "from-file"
            log_format = "json"
        "#;
        let env = |name: &str| match name {
            "CONFIANZA_LISTEN" => Some("127.0.0.1:3000".to_owned()),
            "CONFIANZA_NODE_ID" => Some("from-env".to_owned()),
            _ => None,
        };
        let args = RunArgs {
            node_id: Some("from-flag".to_owned()),
            ..RunArgs::default()
        };
        let config = ServiceConfig::resolve(Some(file), "config.toml", env, &args).expect("ok");
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(config.http.to_string(), "127.0.0.1:2000");
        assert_eq!(config.node_id, "from-flag");
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_values_are_named() {
        let env = |name: &str| (name == "CONFIANZA_HTTP").then(|| "not an address".to_owned());
        let error =
            ServiceConfig::resolve(None, "c.toml", env, &RunArgs::default()).expect_err("refused");
        assert!(error.to_string().contains("CONFIANZA_HTTP"), "{error}");

        let error = ServiceConfig::resolve(
            Some("[service]\nlisten = 7"),
            "c.toml",
            no_env,
            &RunArgs::default(),
        )
        .expect_err("refused");
        assert!(error.to_string().contains("c.toml"), "{error}");

        let error = ServiceConfig::resolve(
            Some("[service]\nlisen = \"127.0.0.1:1\""),
            "c.toml",
            no_env,
            &RunArgs::default(),
        )
        .expect_err("a misspelt key is refused");
        assert!(error.to_string().contains("lisen"), "{error}");
    }
}
