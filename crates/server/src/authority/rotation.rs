//! Crash safety of `ca new-intermediate`: the new files are staged, the database rows are
//! recorded, and only then do the staged files replace the live ones.
//!
//! A rotation touches seven files (the intermediate's key and certificate, the OCSP signer's
//! and RA officer's keys and certificates, the Noise key's certificate) and four database
//! rows; neither a file system nor a database spanning both can make that one atomic step.
//! The order below makes every crash point recoverable when the directory is next opened
//! ([`recover`], called by `Authority::open`):
//!
//! 1. every new key and certificate is written under `DIR/new-intermediate/` (laid out like
//!    DIR), the intermediate's certificate last, and the staging directory is synced;
//! 2. the certificates are recorded, the service ones first and the intermediate's last: the
//!    intermediate's row is the commit point;
//! 3. [`commit`]: the operator's RA officer is pointed at its new credential, the staged
//!    files are renamed over the live ones (the intermediate's certificate last) and the
//!    staging directory is removed.
//!
//! On open, a staging directory whose intermediate certificate is recorded is committed
//! (step 3 is idempotent: a file already moved is simply no longer staged); one whose
//! intermediate certificate is absent or not recorded is discarded, and the live files are
//! still the previous, consistent set. A crash inside step 2 can leave service certificates
//! recorded under an intermediate that never went live: its key and certificate, like the new
//! OCSP and officer keys, are discarded with the staging directory, so nothing chains to them
//! and nothing can use them; they stay listed until they expire.

use std::fs;
use std::path::{Path, PathBuf};

use confianza_pki::serial::Serial;
use der::Decode;

use super::AuthorityError;
use super::layout::{self, Layout};
use crate::store::ca::{CaStore, SqlCaStore};

fn io(path: &Path, source: std::io::Error) -> AuthorityError {
    AuthorityError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The staging directory of `layout`, as a layout of its own.
fn staging_of(layout: &Layout) -> Layout {
    Layout::new(&layout.rotation_staging())
}

/// (staged, live) pairs, the intermediate's certificate last.
fn moves(layout: &Layout, staging: &Layout) -> [(PathBuf, PathBuf); 7] {
    [
        (staging.intermediate_key(), layout.intermediate_key()),
        (staging.ocsp_key(), layout.ocsp_key()),
        (staging.officer_key(), layout.officer_key()),
        (staging.ocsp_cert(), layout.ocsp_cert()),
        (staging.officer_cert(), layout.officer_cert()),
        (staging.noise_cert(), layout.noise_cert()),
        (staging.intermediate_cert(), layout.intermediate_cert()),
    ]
}

/// Creates an empty staging directory (0700, with `ca/`, `ra/` and `server/`), removing a
/// leftover one, and returns its layout.
pub(super) fn create_staging(layout: &Layout) -> Result<Layout, AuthorityError> {
    let staging = staging_of(layout);
    if staging.dir().exists() {
        fs::remove_dir_all(staging.dir()).map_err(|e| io(staging.dir(), e))?;
    }
    layout::create_private_dir(staging.dir())?;
    for dir in [staging.ca_dir(), staging.ra_dir(), staging.server_dir()] {
        layout::create_private_dir(&dir)?;
    }
    Ok(staging)
}

fn sync_dir(path: &Path) -> Result<(), AuthorityError> {
    fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io(path, e))
}

/// Makes the staged files durable (their directory entries included) before the database
/// records the rotation.
pub(super) fn sync_staging(staging: &Layout) -> Result<(), AuthorityError> {
    for dir in [staging.ca_dir(), staging.ra_dir(), staging.server_dir()] {
        sync_dir(&dir)?;
    }
    sync_dir(staging.dir())
}

/// The serial (hex, as the CA database keys it) of a PEM certificate file.
fn serial_of(path: &Path) -> Result<String, AuthorityError> {
    let der = layout::read_certificate(path)?;
    let cert = x509_cert::Certificate::from_der(&der)?;
    Serial::from_der_content(cert.tbs_certificate().serial_number().as_bytes())
        .map(|s| s.to_hex())
        .ok_or_else(|| AuthorityError::Corrupt(format!("{}: not a CA serial", path.display())))
}

/// Step 3: points `officer` at the staged (or already moved) credential, moves every staged
/// file still present over its live counterpart, and removes the staging directory.
/// Idempotent, so that [`recover`] can run it again after a crash in the middle.
pub(super) async fn commit(
    layout: &Layout,
    store: &SqlCaStore,
    officer: &str,
) -> Result<(), AuthorityError> {
    let staging = staging_of(layout);
    let credential = if staging.officer_cert().exists() {
        staging.officer_cert()
    } else {
        layout.officer_cert()
    };
    store
        .set_officer_credential(officer, &serial_of(&credential)?)
        .await?;
    let layout = layout.clone();
    tokio::task::spawn_blocking(move || {
        for (staged, live) in moves(&layout, &staging) {
            if staged.exists() {
                fs::rename(&staged, &live).map_err(|e| io(&live, e))?;
            }
        }
        for dir in [layout.ca_dir(), layout.ra_dir(), layout.server_dir()] {
            sync_dir(&dir)?;
        }
        fs::remove_dir_all(staging.dir()).map_err(|e| io(staging.dir(), e))?;
        sync_dir(layout.dir())
    })
    .await
    .map_err(|e| AuthorityError::Corrupt(format!("committing the rotation panicked: {e}")))?
}

/// Finishes a rotation interrupted after its commit point, or discards one interrupted
/// before it (see the module documentation). Nothing to do without a staging directory.
pub(super) async fn recover(
    layout: &Layout,
    store: &SqlCaStore,
    officer: &str,
) -> Result<(), AuthorityError> {
    let staging = staging_of(layout);
    if !staging.dir().exists() {
        return Ok(());
    }
    let staged_cert = staging.intermediate_cert();
    if staged_cert.exists() {
        let serial = serial_of(&staged_cert)?;
        if store.certificate(&serial).await?.is_some() {
            tracing::warn!(
                serial = %serial,
                "finishing an interrupted `ca new-intermediate` (recorded in the database)"
            );
            return commit(layout, store, officer).await;
        }
    }
    tracing::warn!(
        "discarding an interrupted `ca new-intermediate` (not recorded in the database); \
         the previous intermediate stays in use"
    );
    fs::remove_dir_all(staging.dir()).map_err(|e| io(staging.dir(), e))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use confianza_pki::seal::SealParams;

    use super::super::Authority;
    use super::super::init::{self, InitOptions};
    use super::*;

    async fn fresh(dir: &Path) -> Authority {
        init::init(dir, InitOptions::example(), None, None)
            .await
            .expect("init");
        Authority::open(dir, None, None).await.expect("open")
    }

    async fn officer_credential(authority: &Authority) -> String {
        let name = authority.config().operator_officer.clone();
        authority
            .store()
            .officers()
            .await
            .expect("officers")
            .into_iter()
            .find(|o| o.name == name)
            .expect("operator officer")
            .credential_serial
    }

    /// Where a test's `ca new-intermediate` crashes (the steps of the module documentation).
    enum Crash {
        /// After step 1: staged, nothing recorded.
        BeforeRecording,
        /// After step 2: recorded, no file moved.
        BeforeMoving,
        /// In step 3, once the first `moved` staged files have replaced the live ones.
        WhileMoving { moved: usize },
    }

    /// A directory whose rotation crashed, as the next start found it.
    struct Reopened {
        /// The directory opened again after the crash.
        authority: Authority,
        /// The intermediate certificate (DER) in use before the rotation.
        before: Vec<u8>,
        /// The operator's RA officer's credential serial before the rotation.
        old_credential: String,
        /// The staged intermediate certificate (DER) and its serial.
        staged_der: Vec<u8>,
        staged_serial: String,
        /// The serial of the staged RA officer certificate.
        staged_officer: String,
        /// Declared last: removed after the authority that has it open is dropped.
        _dir: tempfile::TempDir,
    }

    /// Runs `ca new-intermediate` on a fresh directory up to `crash`, then opens the directory
    /// again. Whatever the crash point, the open must leave no staging directory behind and a
    /// whole live set: one that still signs a CRL.
    async fn crash_and_reopen(crash: Crash) -> Reopened {
        let dir = tempfile::tempdir().expect("tempdir");
        let authority = fresh(dir.path()).await;
        let before = authority.intermediate_der().to_vec();
        let old_credential = officer_credential(&authority).await;
        let staged = init::stage_intermediate(&authority, None, SealParams::INSECURE_FOR_TESTS)
            .await
            .expect("stage");
        let layout = authority.layout().clone();
        let staging = staging_of(&layout);
        let staged_der = layout::read_certificate(&staging.intermediate_cert()).expect("staged");
        let staged_serial = serial_of(&staging.intermediate_cert()).expect("staged serial");
        let staged_officer = serial_of(&staging.officer_cert()).expect("officer serial");
        if !matches!(crash, Crash::BeforeRecording) {
            init::record_intermediate(authority.store(), &staged)
                .await
                .expect("record");
        }
        if let Crash::WhileMoving { moved } = crash {
            for (staged, live) in moves(&layout, &staging).into_iter().take(moved) {
                fs::rename(staged, live).expect("move");
            }
        }
        drop(authority);
        let reopened = Authority::open(dir.path(), None, None)
            .await
            .expect("reopen");
        assert!(!reopened.layout().rotation_staging().exists());
        reopened
            .publish_crl(std::time::SystemTime::now())
            .await
            .expect("crl");
        Reopened {
            authority: reopened,
            before,
            old_credential,
            staged_der,
            staged_serial,
            staged_officer,
            _dir: dir,
        }
    }

    #[tokio::test]
    async fn an_unrecorded_rotation_is_discarded_on_open() {
        let reopened = crash_and_reopen(Crash::BeforeRecording).await;
        let authority = &reopened.authority;
        assert_eq!(authority.intermediate_der(), reopened.before);
        let recorded = authority.store().certificate(&reopened.staged_serial).await;
        assert!(recorded.expect("query").is_none());
    }

    #[tokio::test]
    async fn a_recorded_rotation_is_finished_on_open() {
        let reopened = crash_and_reopen(Crash::BeforeMoving).await;
        let authority = &reopened.authority;
        assert_ne!(authority.intermediate_der(), reopened.before);
        assert_eq!(authority.intermediate_der(), reopened.staged_der);
        let credential = officer_credential(authority).await;
        assert_ne!(credential, reopened.old_credential);
        assert_eq!(credential, reopened.staged_officer);
    }

    #[tokio::test]
    async fn a_half_moved_rotation_is_finished_on_open() {
        // The new intermediate key and OCSP key are live, their certificates are still staged:
        // the live set does not open on its own.
        let reopened = crash_and_reopen(Crash::WhileMoving { moved: 2 }).await;
        assert_eq!(reopened.authority.intermediate_der(), reopened.staged_der);
    }
}
