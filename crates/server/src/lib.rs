//! Confianza's server: the CA/RA operator commands (`init`, `ra`, `ca`), the messaging service
//! over Noise Pipes (`run`), the HTTP repository, and the storage behind them.
//!
//! | module | what it does |
//! | --- | --- |
//! | [`authority`] | the data directory's CA: sealed keys, issuance, revocation, CRL, OCSP, RA codes |
//! | [`store`] | durable state behind traits: SQLite (default) and PostgreSQL |
//! | [`ops`] | the operator commands `init`, `ra …`, `ca …` |
//! | [`service`] | the messaging service: Noise listener, requests, mailboxes, fan-out |
//! | [`http`] | the public repository, OCSP, metrics and health over HTTP |
//! | [`loadtest`] | `confianza-server loadtest`: the load generator and its client |
#![forbid(unsafe_code)]

pub mod authority;
pub mod http;
pub mod loadtest;
pub mod ops;
pub mod service;
pub mod store;
