//! Creating a data directory (`confianza-server init`) and rotating the intermediate
//! (`ca new-intermediate`): the root CA, the online intermediate, the delegated OCSP signer,
//! the operator console's RA officer, the server's Noise key and certificate, the first CRLs,
//! and the database rows of every certificate issued on the way.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use confianza_pki::ca::{IssuedCertificate, Issuer, IssuerRole};
use confianza_pki::crl::{CrlParams, build_crl};
use confianza_pki::csr;
use confianza_pki::profile::{CertificateKind, SubjectName};
use confianza_pki::ra::ApprovedRequest;
use confianza_pki::seal::SealParams;
use confianza_pki::signer::{CaAlgorithm, CaKey};
use der::Encode;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rand::Rng;
use sha2::{Digest, Sha256};
use x509_cert::builder::{Builder, RequestBuilder};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use zeroize::Zeroizing;

use super::layout::{self, CONFIG_VERSION, Config, Layout};
use super::ocsp_signer::issue_ocsp_signer;
use super::{
    Authority, AuthorityError, certificate_record, hex_lower, intermediate_urls, root_urls, unix,
};
use crate::store::Database;
use crate::store::ca::{CaStore, CrlRecord, Issuance, OfficerRecord, SqlCaStore};

/// Lifetime of the root's CRL: the root key is usually offline, so its CRL (listing revoked
/// intermediates) is made to last a year; `ca new-intermediate` and `ca root-crl` renew it.
pub const ROOT_CRL_VALIDITY: Duration = Duration::from_secs(365 * 86_400);

/// The server name when `--name` is not given: `.localhost` is reserved for the loopback
/// (RFC 6761), which is where an unconfigured server is reachable.
pub const DEFAULT_SERVER_NAME: &str = "confianza.localhost";

/// The repository URL when `--http-url` is not given.
pub const DEFAULT_HTTP_URL: &str = "http://127.0.0.1:8443";

/// The operator's name recorded as approver of what `init` issues.
pub const INIT_OPERATOR: &str = "init";

/// What `init` is asked for.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The organisation (O= of the CA certificates).
    pub organisation: String,
    /// The server's DNS name.
    pub name: String,
    /// CA key algorithm.
    pub key_type: CaAlgorithm,
    /// Domains served (empty: derived from `name`).
    pub domains: Vec<String>,
    /// Open registration for these domains.
    pub open_registration: bool,
    /// Base URL of the HTTP repository.
    pub http_url: String,
    /// Argon2id parameters for sealing the keys.
    pub seal_params: SealParams,
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct InitSummary {
    /// SHA-256 (hex) of the root certificate DER: what users compare out of band.
    pub root_fingerprint: String,
    /// The domains served.
    pub domains: Vec<String>,
    /// The operator console's RA officer.
    pub officer: String,
}

/// The domain of a server name: the name without its first label when it has three or more
/// labels (`chat.example.org` → `example.org`), else the name itself.
pub fn domain_of(name: &str) -> String {
    match name.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest.to_owned(),
        _ => name.to_owned(),
    }
}

fn validate(options: &InitOptions) -> Result<(Vec<String>, String), AuthorityError> {
    let bad = |m: String| AuthorityError::Config(m);
    if options.organisation.trim().is_empty()
        || options.organisation.len() > confianza_pki::limits::MAX_NAME_ATTRIBUTE_LEN
    {
        return Err(bad(format!(
            "--org must be 1 to {} characters",
            confianza_pki::limits::MAX_NAME_ATTRIBUTE_LEN
        )));
    }
    SubjectName::dns(&options.name)
        .map_err(|_| bad(format!("invalid --name {:?}", options.name)))?;
    let url = &options.http_url;
    if !(url.starts_with("http://") || url.starts_with("https://")) || !url.is_ascii() {
        return Err(bad(format!(
            "--http-url must be an http(s) URL, got {url:?}"
        )));
    }
    let domains = if options.domains.is_empty() {
        vec![domain_of(&options.name)]
    } else {
        options.domains.clone()
    };
    let mut normalised = Vec::with_capacity(domains.len());
    for d in &domains {
        // A domain is valid when an address in it is.
        let address = SubjectName::address(&format!("ra@{d}")).map_err(|_| {
            bad(format!(
                "invalid domain {d:?} (it needs a dot, e.g. example.org)"
            ))
        })?;
        normalised.push(address.domain().to_owned());
    }
    let officer = format!("ra@{}", normalised.first().map_or("", String::as_str));
    Ok((normalised, officer))
}

/// A PKCS#10 request signed by an Ed25519 key, with a CN and optionally an rfc822Name SAN.
pub(super) fn ed25519_csr(
    key: &ed25519_dalek::SigningKey,
    common_name: &str,
    address: Option<&str>,
) -> Result<Vec<u8>, AuthorityError> {
    let fail = |what: &str| AuthorityError::Config(format!("cannot build {what} request"));
    let subject = x509_cert::name::Name::from_str(&format!("CN={common_name}"))
        .map_err(|_| fail("subject"))?;
    let mut builder = RequestBuilder::new(subject).map_err(|_| fail("certificate"))?;
    if let Some(address) = address {
        let ia5 = der::asn1::Ia5String::new(address).map_err(|_| fail("address"))?;
        builder
            .add_extension(&SubjectAltName(vec![GeneralName::Rfc822Name(ia5)]))
            .map_err(|_| fail("SAN"))?;
    }
    let request = builder
        .build::<_, ed25519_dalek::Signature>(key)
        .map_err(|_| fail("certificate"))?;
    request.to_der().map_err(|_| fail("certificate"))
}

/// Everything made in memory by the first (synchronous) part of `init`.
struct Made {
    root: Issuer,
    intermediate_cert: IssuedCertificate,
    intermediate_key: Zeroizing<Vec<u8>>,
    service: ServiceCertificates,
    noise_key: Zeroizing<[u8; 32]>,
    root_crl: Vec<u8>,
}

/// Issues the intermediate for `int_key` under `root`.
fn issue_intermediate(
    root: &Issuer,
    int_key: &CaKey,
    organisation: &str,
    now: SystemTime,
) -> Result<IssuedCertificate, AuthorityError> {
    let template = csr::intermediate_template(
        int_key.public_key_info_der(),
        &format!("{organisation} Issuing CA"),
    )?;
    Ok(root.issue(
        ApprovedRequest::by_ca_operator(0, template, INIT_OPERATOR, now),
        now,
        &mut rand::rng(),
    )?)
}

fn make(
    options: &InitOptions,
    officer_address: &str,
    now: SystemTime,
) -> Result<Made, AuthorityError> {
    let mut rng = rand::rng();
    let org = options.organisation.as_str();
    let root = Issuer::new_root(
        CaKey::generate(options.key_type, &mut rng)?,
        &format!("{org} Root CA"),
        Some(org),
        now,
        None,
        &mut rng,
    )?
    .with_urls(root_urls(&options.http_url))?;
    let int_key = CaKey::generate(options.key_type, &mut rng)?;
    let intermediate_cert = issue_intermediate(&root, &int_key, org, now)?;
    let intermediate_key = int_key.to_pkcs8_der()?;
    let intermediate = Issuer::from_certificate(
        int_key,
        &intermediate_cert.der,
        IssuerRole::Intermediate,
        Some(intermediate_urls(&options.http_url)),
    )?;
    let mut noise_key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(noise_key.as_mut());
    let service = issue_service_certificates(
        &intermediate,
        org,
        &options.name,
        officer_address,
        &noise_key,
        now,
    )?;

    let root_crl = build_crl(
        &root,
        &CrlParams {
            crl_number: 1,
            this_update: now,
            next_update: now + ROOT_CRL_VALIDITY,
        },
        &[],
    )?;
    Ok(Made {
        root,
        intermediate_cert,
        intermediate_key,
        service,
        noise_key,
        root_crl,
    })
}

/// The certificates the online intermediate issues for the CA's own services.
struct ServiceCertificates {
    ocsp_cert: IssuedCertificate,
    ocsp_key: Zeroizing<Vec<u8>>,
    officer_cert: IssuedCertificate,
    officer_key: Zeroizing<Vec<u8>>,
    noise_cert: IssuedCertificate,
}

/// Issues under `intermediate`: a fresh delegated OCSP signer, a fresh RA officer credential
/// for the operator console, and the certificate of the server's Noise key.
fn issue_service_certificates(
    intermediate: &Issuer,
    org: &str,
    server_name: &str,
    officer_address: &str,
    noise_key: &[u8; 32],
    now: SystemTime,
) -> Result<ServiceCertificates, AuthorityError> {
    let mut rng = rand::rng();
    let operator = |template| ApprovedRequest::by_ca_operator(0, template, INIT_OPERATOR, now);

    let (ocsp_cert, ocsp_key) = issue_ocsp_signer(intermediate, org, now)?;

    // The operator console's RA officer credential.
    let officer = ed25519_dalek::SigningKey::generate(&mut rng);
    let template = csr::parse_csr(&ed25519_csr(
        &officer,
        officer_address,
        Some(officer_address),
    )?)?
    .into_template(CertificateKind::RaOfficer)?;
    let officer_cert = intermediate.issue(operator(template), now, &mut rng)?;
    let officer_key = Zeroizing::new(
        officer
            .to_pkcs8_der()
            .map_err(|_| AuthorityError::Config("cannot encode the RA officer key".into()))?
            .as_bytes()
            .to_vec(),
    );

    // The server's Noise static key certificate.
    let noise_public =
        x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*noise_key)).to_bytes();
    let template = csr::noise_server_template(&noise_public, server_name)?;
    let noise_cert = intermediate.issue(operator(template), now, &mut rng)?;
    Ok(ServiceCertificates {
        ocsp_cert,
        ocsp_key,
        officer_cert,
        officer_key,
        noise_cert,
    })
}

impl ServiceCertificates {
    /// Writes the service keys (sealed under `passphrase` unless it is `None`) and
    /// certificates into DIR, keys first (see `ocsp_signer` for why).
    fn write(
        &self,
        layout: &Layout,
        passphrase: Option<&[u8]>,
        params: SealParams,
    ) -> Result<(), AuthorityError> {
        layout::write_key(&layout.ocsp_key(), &self.ocsp_key, passphrase, params)?;
        layout::write_key(&layout.officer_key(), &self.officer_key, passphrase, params)?;
        layout::write_certificate(&layout.ocsp_cert(), &self.ocsp_cert.der)?;
        layout::write_certificate(&layout.officer_cert(), &self.officer_cert.der)?;
        layout::write_certificate(&layout.noise_cert(), &self.noise_cert.der)
    }
}

/// Records certificates issued outside a request (by `init` or a rotation), each with the key
/// identifier of its issuer.
async fn record_issued(
    store: &SqlCaStore,
    rows: &[(&IssuedCertificate, &str)],
) -> Result<(), AuthorityError> {
    for (issued, issuer_key_id) in rows {
        store
            .record_issuance(Issuance {
                certificate: certificate_record(issued, issuer_key_id, None)?,
                request: None,
                consume_code: None,
            })
            .await?;
    }
    Ok(())
}

/// Records a service certificate issued to replace the one with `old_serial`, linked to it
/// when that one is in this database (always, unless the directory was restored elsewhere).
pub(super) async fn record_replacement(
    store: &SqlCaStore,
    issued: &IssuedCertificate,
    issuer_key_id: &str,
    old_serial: Option<&str>,
) -> Result<(), AuthorityError> {
    let mut certificate = certificate_record(issued, issuer_key_id, None)?;
    if let Some(old) = old_serial
        && store.certificate(old).await?.is_some()
    {
        certificate.previous_serial = Some(old.to_owned());
    }
    store
        .record_issuance(Issuance {
            certificate,
            request: None,
            consume_code: None,
        })
        .await?;
    Ok(())
}

/// Creates the data directory `dir`: keys (sealed under `passphrase` unless it is `None`),
/// certificates, configuration, database rows and the first CRLs. Refuses a directory that
/// already holds a CA. Uses `database_url` instead of `DIR/confianza.db` when given.
pub async fn init(
    dir: &Path,
    options: InitOptions,
    passphrase: Option<&[u8]>,
    database_url: Option<&str>,
) -> Result<InitSummary, AuthorityError> {
    let layout = Layout::new(dir);
    if layout.config().exists() || layout.root_cert().exists() {
        return Err(AuthorityError::AlreadyInitialised(dir.to_path_buf()));
    }
    let (domains, officer_address) = validate(&options)?;
    let now = SystemTime::now();
    let made = {
        let options = options.clone();
        let officer_address = officer_address.clone();
        // RSA-3072 generation and Argon2id take seconds: off the async workers.
        tokio::task::spawn_blocking(move || make(&options, &officer_address, now))
            .await
            .map_err(|e| AuthorityError::Corrupt(format!("key generation panicked: {e}")))??
    };
    let store = SqlCaStore::new(match database_url {
        Some(url) => Database::connect(url).await?,
        None => {
            layout::create_private_dir(dir)?;
            Database::open_sqlite_file(&layout.database()).await?
        }
    });

    // Files: keys (sealed or 0600), certificates, config last (it marks the directory done).
    for d in [
        layout.dir().to_path_buf(),
        layout.ca_dir(),
        layout.ra_dir(),
        layout.server_dir(),
    ] {
        layout::create_private_dir(&d)?;
    }
    let params = options.seal_params;
    let files_passphrase = passphrase.map(|p| Zeroizing::new(p.to_vec()));
    let made = {
        let layout = layout.clone();
        tokio::task::spawn_blocking(move || {
            let passphrase = files_passphrase.as_ref().map(|p| p.as_slice());
            let root_key = made.root.key().to_pkcs8_der()?;
            layout::write_key(&layout.root_key(), &root_key, passphrase, params)?;
            layout::write_key(
                &layout.intermediate_key(),
                &made.intermediate_key,
                passphrase,
                params,
            )?;
            made.service.write(&layout, passphrase, params)?;
            Ok::<_, AuthorityError>(made)
        })
        .await
        .map_err(|e| AuthorityError::Corrupt(format!("key sealing panicked: {e}")))??
    };
    layout::write_file(&layout.noise_key(), made.noise_key.as_slice(), 0o600)?;
    layout::write_certificate(&layout.root_cert(), made.root.certificate_der())?;
    layout::write_certificate(&layout.intermediate_cert(), &made.intermediate_cert.der)?;
    layout::write_file(&layout.root_crl(), &made.root_crl, 0o644)?;

    // Database rows.
    let root_kid = hex_lower(made.root.key_id());
    let int_kid = hex_lower(&confianza_pki::ca::key_identifier(
        &made
            .intermediate_cert
            .certificate()?
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()?,
    )?);
    record_issued(
        &store,
        &[
            (&made.intermediate_cert, &root_kid),
            (&made.service.ocsp_cert, &int_kid),
            (&made.service.officer_cert, &int_kid),
            (&made.service.noise_cert, &int_kid),
        ],
    )
    .await?;
    store
        .add_officer(OfficerRecord {
            name: officer_address.clone(),
            credential_serial: made.service.officer_cert.serial.to_hex(),
            kinds: vec![CertificateKind::UserIdentity.name().to_owned()],
            domains: domains.clone(),
            created_at: unix(now),
            disabled_at: None,
        })
        .await?;
    let root_number = store.next_crl_number(&root_kid).await?;
    store
        .publish_crl(CrlRecord {
            issuer_key_id: root_kid,
            number: root_number,
            this_update: unix(now),
            next_update: unix(now + ROOT_CRL_VALIDITY),
            der: made.root_crl.clone(),
        })
        .await?;

    let config = Config {
        version: CONFIG_VERSION,
        organisation: options.organisation.clone(),
        name: SubjectName::dns(&options.name)?.as_str().to_owned(),
        http_url: options.http_url.trim_end_matches('/').to_owned(),
        domains: domains.clone(),
        open_registration: options.open_registration,
        key_type: options.key_type.name().to_owned(),
        sealed: passphrase.is_some(),
        operator_officer: officer_address.clone(),
    };
    layout::write_config(&layout, &config)?;
    let authority = Authority::open_with_store(dir, passphrase, store).await?;
    authority.publish_crl(now).await?;
    Ok(InitSummary {
        root_fingerprint: hex_lower(&Sha256::digest(made.root.certificate_der())),
        domains,
        officer: officer_address,
    })
}

#[cfg(test)]
impl InitOptions {
    /// "Example Org" serving example.org from chat.example.org, Ed25519, with the cheapest
    /// sealing parameters: for tests.
    pub(crate) fn example() -> Self {
        Self {
            organisation: "Example Org".into(),
            name: "chat.example.org".into(),
            key_type: CaAlgorithm::Ed25519,
            domains: vec!["example.org".into()],
            open_registration: false,
            http_url: DEFAULT_HTTP_URL.into(),
            seal_params: SealParams::INSECURE_FOR_TESTS,
        }
    }
}

/// Loads the root issuer from DIR (its key must be online).
pub fn load_root(
    layout: &Layout,
    config: &Config,
    passphrase: Option<&[u8]>,
) -> Result<Issuer, AuthorityError> {
    let path = layout.root_key();
    if !path.exists() {
        return Err(AuthorityError::RootKeyOffline);
    }
    let key = CaKey::from_pkcs8_der(&layout::read_key(&path, passphrase)?)?;
    let der = layout::read_certificate(&layout.root_cert())?;
    Ok(Issuer::from_certificate(
        key,
        &der,
        IssuerRole::Root,
        Some(root_urls(&config.http_url)),
    )?)
}

/// What `ca renew-service-certs` renewed: (what, old serial, new serial).
pub type RenewedServiceCertificates = Vec<(&'static str, String, String)>;

/// `ca renew-service-certs`: fresh certificates from the current intermediate for the
/// delegated OCSP signer (new key), the operator console's RA officer credential (new key)
/// and the server's Noise key (same key), each recorded as renewing the one it replaces.
/// The old ones stay valid until they expire (a running service keeps using them until it
/// is restarted, except the OCSP signer, which it replaces with this one once its own is in
/// its renewal window). Reopen the [`Authority`] to use the new ones.
pub async fn renew_service_certificates(
    authority: &Authority,
    passphrase: Option<&[u8]>,
    seal_params: SealParams,
    now: SystemTime,
) -> Result<RenewedServiceCertificates, AuthorityError> {
    let layout = authority.layout().clone();
    let config = authority.config().clone();
    let noise_key = authority.noise_static_private();
    let owned = passphrase.map(|p| Zeroizing::new(p.to_vec()));
    let old = [
        (
            "OCSP signer",
            layout::read_certificate(&layout.ocsp_cert())?,
        ),
        (
            "RA officer",
            layout::read_certificate(&layout.officer_cert())?,
        ),
        (
            "Noise server",
            layout::read_certificate(&layout.noise_cert())?,
        ),
    ];
    let int_kid = authority.issuer_key_id().to_owned();
    let service = {
        let authority = authority.clone();
        tokio::task::spawn_blocking(move || {
            issue_service_certificates(
                &authority.inner.intermediate,
                &config.organisation,
                &config.name,
                &config.operator_officer,
                &noise_key,
                now,
            )
        })
        .await
        .map_err(|e| {
            AuthorityError::Corrupt(format!("service certificate renewal panicked: {e}"))
        })??
    };
    let store = authority.store();
    let new = [
        &service.ocsp_cert,
        &service.officer_cert,
        &service.noise_cert,
    ];
    let mut renewed = Vec::with_capacity(3);
    for ((what, old_der), issued) in old.iter().zip(new) {
        let old_serial = <x509_cert::Certificate as der::Decode>::from_der(old_der)
            .ok()
            .and_then(|c| {
                confianza_pki::serial::Serial::from_der_content(
                    c.tbs_certificate().serial_number().as_bytes(),
                )
            })
            .map(|s| s.to_hex());
        record_replacement(store, issued, &int_kid, old_serial.as_deref()).await?;
        renewed.push((
            *what,
            old_serial.unwrap_or_default(),
            issued.serial.to_hex(),
        ));
    }
    // Files after the database rows, so that a key on disk always has its certificate
    // recorded (what `ocsp_signer::reconcile` relies on after a crash).
    let service = tokio::task::spawn_blocking(move || {
        service.write(&layout, owned.as_ref().map(|p| p.as_slice()), seal_params)?;
        Ok::<_, AuthorityError>(service)
    })
    .await
    .map_err(|e| AuthorityError::Corrupt(format!("writing the service keys panicked: {e}")))??;
    store
        .set_officer_credential(
            &authority.config().operator_officer,
            &service.officer_cert.serial.to_hex(),
        )
        .await?;
    Ok(renewed)
}

/// `ca root-crl`: a fresh CRL of the root (listing the intermediates it revoked), signed with
/// the root key (which must be online), recorded and written to `DIR/ca/root.crl`.
pub async fn publish_root_crl(
    authority: &Authority,
    passphrase: Option<&[u8]>,
    now: SystemTime,
) -> Result<CrlRecord, AuthorityError> {
    let layout = authority.layout().clone();
    let config = authority.config().clone();
    let owned = passphrase.map(|p| Zeroizing::new(p.to_vec()));
    let root = tokio::task::spawn_blocking(move || {
        load_root(&layout, &config, owned.as_ref().map(|p| p.as_slice()))
    })
    .await
    .map_err(|e| AuthorityError::Corrupt(format!("root key loading panicked: {e}")))??;
    let root_kid = hex_lower(root.key_id());
    let store = authority.store();
    let mut entries = Vec::new();
    for row in store.revoked(&root_kid).await? {
        entries.push(confianza_pki::crl::RevokedEntry {
            serial: super::parse_serial(&row.serial)?,
            revoked_at: super::from_unix(row.at),
            reason: confianza_pki::crl::RevocationReason::from_code(row.reason)
                .ok_or_else(|| AuthorityError::Corrupt(format!("reason {}", row.reason)))?,
        });
    }
    let number = store.next_crl_number(&root_kid).await?;
    let params = CrlParams {
        crl_number: u64::try_from(number)
            .map_err(|_| AuthorityError::Corrupt("CRL number".into()))?,
        this_update: now,
        next_update: now + ROOT_CRL_VALIDITY,
    };
    let der = build_crl(&root, &params, &entries)?;
    let record = CrlRecord {
        issuer_key_id: root_kid,
        number,
        this_update: unix(now),
        next_update: unix(params.next_update),
        der,
    };
    store.publish_crl(record.clone()).await?;
    layout::write_file(&authority.layout().root_crl(), &record.der, 0o644)?;
    Ok(record)
}

/// `ca new-intermediate`: a fresh intermediate key signed by the (re-imported) root, which
/// replaces the current one for new certificates, with a fresh OCSP signer and RA officer
/// credential and a new certificate for the (unchanged) Noise key. Certificates of the old
/// intermediate stay in the database. Returns the new intermediate's certificate DER; reopen
/// the [`Authority`] to use it.
///
/// Crash-safe in three steps (see [`super::rotation`]): every new key and certificate is
/// written to a staging directory, then the database rows are recorded (the intermediate's
/// last: its row commits the rotation), then the staged files replace the live ones. Opening
/// the directory after a crash finishes a recorded rotation and discards an unrecorded one.
pub async fn new_intermediate(
    authority: &Authority,
    passphrase: Option<&[u8]>,
    seal_params: SealParams,
) -> Result<Vec<u8>, AuthorityError> {
    let staged = stage_intermediate(authority, passphrase, seal_params).await?;
    record_intermediate(authority.store(), &staged).await?;
    super::rotation::commit(
        authority.layout(),
        authority.store(),
        &authority.config().operator_officer,
    )
    .await?;
    Ok(staged.intermediate_cert.der)
}

/// A rotation written to the staging directory, not yet recorded.
pub(super) struct StagedIntermediate {
    root_kid: String,
    int_kid: String,
    intermediate_cert: IssuedCertificate,
    service: ServiceCertificates,
}

/// First step of [`new_intermediate`]: issues the new intermediate and its service
/// certificates and writes their keys and certificates to the staging directory (the
/// intermediate's certificate last: its presence there means the staging is complete).
pub(super) async fn stage_intermediate(
    authority: &Authority,
    passphrase: Option<&[u8]>,
    seal_params: SealParams,
) -> Result<StagedIntermediate, AuthorityError> {
    let layout = authority.layout().clone();
    let config = authority.config().clone();
    let noise_key = authority.noise_static_private();
    let now = SystemTime::now();
    let owned = passphrase.map(|p| Zeroizing::new(p.to_vec()));
    tokio::task::spawn_blocking(move || {
        let passphrase = owned.as_ref().map(|p| p.as_slice());
        let root = load_root(&layout, &config, passphrase)?;
        let algorithm = CaAlgorithm::from_name(&config.key_type)
            .ok_or_else(|| AuthorityError::Config(format!("key_type {:?}", config.key_type)))?;
        let key = CaKey::generate(algorithm, &mut rand::rng())?;
        let cert = issue_intermediate(&root, &key, &config.organisation, now)?;
        let key_der = key.to_pkcs8_der()?;
        let intermediate = Issuer::from_certificate(
            key,
            &cert.der,
            IssuerRole::Intermediate,
            Some(intermediate_urls(&config.http_url)),
        )?;
        let service = issue_service_certificates(
            &intermediate,
            &config.organisation,
            &config.name,
            &config.operator_officer,
            &noise_key,
            now,
        )?;
        let staging = super::rotation::create_staging(&layout)?;
        layout::write_key(
            &staging.intermediate_key(),
            &key_der,
            passphrase,
            seal_params,
        )?;
        service.write(&staging, passphrase, seal_params)?;
        layout::write_certificate(&staging.intermediate_cert(), &cert.der)?;
        super::rotation::sync_staging(&staging)?;
        Ok::<_, AuthorityError>(StagedIntermediate {
            root_kid: hex_lower(root.key_id()),
            int_kid: hex_lower(intermediate.key_id()),
            intermediate_cert: cert,
            service,
        })
    })
    .await
    .map_err(|e| AuthorityError::Corrupt(format!("intermediate rotation panicked: {e}")))?
}

/// Second step of [`new_intermediate`]: records the staged certificates, the service ones
/// first and the intermediate last (its row is what commits the rotation).
pub(super) async fn record_intermediate(
    store: &SqlCaStore,
    staged: &StagedIntermediate,
) -> Result<(), AuthorityError> {
    let service = &staged.service;
    record_issued(
        store,
        &[
            (&service.ocsp_cert, &staged.int_kid),
            (&service.officer_cert, &staged.int_kid),
            (&service.noise_cert, &staged.int_kid),
            (&staged.intermediate_cert, &staged.root_kid),
        ],
    )
    .await
}
