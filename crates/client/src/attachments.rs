//! Attachments: a file is encrypted as a stream with fresh keys
//! ([`confianza_protocol::attachment`]), uploaded to the server's blob store in chunks, and its
//! pointer (blob id, keys, digest, sizes, name, type) sent in a normal encrypted message. The
//! receiver downloads the blob, checks its MAC and digest over the whole blob, and only then
//! decrypts it into the folder the user chose.
//!
//! # Guarantees
//!
//! * **Uploads resume.** The upload's state (blob id, the encrypted temporary file, keys,
//!   digest) is sealed in the store before the first chunk leaves, so a call for the same file
//!   after an interruption asks the server where it stopped (`BlobStatus`) and goes on from
//!   there. A source file that changed since is encrypted again from scratch.
//! * **Verify, then decrypt.** Nothing is written into the target folder until the whole blob
//!   has passed its MAC and digest; a blob that fails is a typed error and its download is
//!   deleted.
//! * **The sender does not choose the path.** The file name in a pointer is reduced to one
//!   harmless path component ([`sanitize_file_name`]) and an existing file is never replaced:
//!   a numbered suffix is added instead.
//! * **Keys at rest are sealed**, like every other secret of the store; temporary files live
//!   in the profile directory (0700) and are created 0600.

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use confianza_api::limits::MAX_BLOB_CHUNK_LEN;
use confianza_api::{BlobId, ErrorCode, GroupId, RequestBody, ResponseBody};
use confianza_protocol::attachment::{
    ATTACHMENT_KEYS_LEN, AttachmentEncryptor, AttachmentKeys, AttachmentVerifier, DIGEST_LEN,
    DecryptError, MAX_ATTACHMENT_BLOB_LEN, MAX_ATTACHMENT_PLAINTEXT_LEN, VerifyError, blob_len,
};
use prost::Message as _;
use zeroize::{Zeroize, Zeroizing};

use crate::account::{Client, ClientError};
use crate::connection::{RequestError, task_rng};
use crate::content::{AttachmentPointer, Body};
use crate::groups::GroupSendReport;
use crate::messaging::SendReport;
use crate::store::StoreError;

/// Bytes read from a file (or the temporary blob) at a time: large enough to keep the cipher
/// and the disk busy, small enough that memory stays constant whatever the file's size.
pub const IO_BUFFER_LEN: usize = 64 * 1024;

/// Longest file name, in bytes, kept from a pointer (before a numbered suffix): the common
/// file-system limit of 255 bytes leaves room for ` (NNNN)`.
pub const MAX_FILE_NAME_LEN: usize = 240;

/// Longest content type accepted in a pointer (RFC 6838 allows 127 + 1 + 127 characters).
pub const MAX_CONTENT_TYPE_LEN: usize = 255;

/// Numbered names tried (`name (1).ext` … ) before giving up on finding a free file name.
pub const MAX_NAME_SUFFIX: u32 = 9999;

/// The name used when a pointer's file name sanitises to nothing.
pub const FALLBACK_FILE_NAME: &str = "attachment";

/// Version of the sealed upload-state snapshot.
const UPLOAD_STATE_VERSION: u32 = 1;

/// Subdirectory of the profile directory holding temporary attachment files.
const TEMP_DIR: &str = "attachments";

/// How far a transfer has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the blob transferred so far.
    pub done: u64,
    /// Size of the blob.
    pub total: u64,
}

/// Why an attachment could not be sent or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachmentError {
    /// The client failed (store, connection, request, trust); see the inner error.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file (or the announced blob) is larger than an attachment may be.
    #[error("attachment of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    /// The blob does not exist on the server (never uploaded, or deleted).
    #[error("the attachment is not on the server")]
    BlobNotFound,
    /// The blob's time on the server is over.
    #[error("the attachment has expired on the server")]
    BlobExpired,
    /// The downloaded blob does not carry a valid MAC under the pointer's key.
    #[error("the attachment's MAC does not match: it was altered")]
    MacMismatch,
    /// The downloaded blob is not the one the sender described (digest).
    #[error("the attachment's digest does not match the sender's")]
    DigestMismatch,
    /// The downloaded blob has the wrong length.
    #[error("the attachment blob has the wrong length: {0}")]
    WrongLength(String),
    /// The pointer in the message is malformed (the message says how).
    #[error("malformed attachment pointer: {0}")]
    BadPointer(String),
    /// History message `0` carries no attachment.
    #[error("message {0} carries no attachment")]
    NoAttachment(i64),
    /// No free name was found in the target folder.
    #[error("no free file name for {0} in the target folder")]
    NoFreeName(String),
    /// The server answered a blob request with something impossible.
    #[error("the server broke the blob protocol: {0}")]
    Protocol(String),
}

impl From<StoreError> for AttachmentError {
    fn from(error: StoreError) -> Self {
        Self::Client(error.into())
    }
}

impl From<RequestError> for AttachmentError {
    fn from(error: RequestError) -> Self {
        Self::Client(error.into())
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> AttachmentError + '_ {
    move |source| AttachmentError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Maps a refusal of a blob request to the typed errors a user can act on.
/// How many times one upload re-reads the server's byte count after a chunk was refused at a
/// stale offset (chunks of an earlier connection still landing) before giving up.
pub const MAX_UPLOAD_RESYNCS: u32 = 3;

fn blob_refusal(error: ClientError) -> AttachmentError {
    match error {
        ClientError::Request(RequestError::Refused(ref refusal)) => match refusal.code {
            ErrorCode::NotFound => AttachmentError::BlobNotFound,
            ErrorCode::Expired => AttachmentError::BlobExpired,
            _ => AttachmentError::Client(error),
        },
        other => AttachmentError::Client(other),
    }
}

/// An attachment received in a message, as recorded (without its keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingAttachment {
    /// The history message that carried it.
    pub message_id: i64,
    /// The sender's file name, as sent (see [`sanitize_file_name`] for what is used on disk).
    pub file_name: String,
    pub content_type: String,
    /// Size of the decrypted file.
    pub plaintext_size: u64,
    /// Size of the encrypted blob to download.
    pub blob_size: u64,
}

/// Where a saved attachment went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedAttachment {
    pub path: PathBuf,
    pub size: u64,
}

/// A pointer whose fields have the right shapes. Its keys are wiped on drop.
struct CheckedPointer {
    blob_id: BlobId,
    keys: AttachmentKeys,
    digest: [u8; DIGEST_LEN],
    blob_size: u64,
    file_name: String,
}

impl CheckedPointer {
    fn check(pointer: &AttachmentPointer) -> Result<Self, AttachmentError> {
        let blob_id = BlobId(
            pointer
                .blob_id
                .as_slice()
                .try_into()
                .map_err(|_| AttachmentError::BadPointer("blob id length".into()))?,
        );
        if pointer.keys.len() != ATTACHMENT_KEYS_LEN {
            return Err(AttachmentError::BadPointer("key length".into()));
        }
        let keys = AttachmentKeys::from_slice(&pointer.keys)
            .map_err(|_| AttachmentError::BadPointer("key length".into()))?;
        let digest: [u8; DIGEST_LEN] = pointer
            .digest
            .as_slice()
            .try_into()
            .map_err(|_| AttachmentError::BadPointer("digest length".into()))?;
        if pointer.size > MAX_ATTACHMENT_BLOB_LEN {
            return Err(AttachmentError::TooLarge {
                size: pointer.size,
                limit: MAX_ATTACHMENT_BLOB_LEN,
            });
        }
        if pointer.plaintext_size > MAX_ATTACHMENT_PLAINTEXT_LEN
            || blob_len(pointer.plaintext_size) != pointer.size
        {
            return Err(AttachmentError::BadPointer(
                "blob size does not match the file size".into(),
            ));
        }
        if pointer.content_type.len() > MAX_CONTENT_TYPE_LEN {
            return Err(AttachmentError::BadPointer("content type too long".into()));
        }
        Ok(Self {
            blob_id,
            keys,
            digest,
            blob_size: pointer.size,
            file_name: pointer.file_name.clone(),
        })
    }
}

/// The sealed snapshot of an upload in progress (versioned; never the live object).
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
struct UploadState {
    #[prost(uint32, tag = "1")]
    version: u32,
    #[prost(bytes = "vec", tag = "2")]
    blob_id: Vec<u8>,
    /// File name of the encrypted copy inside the profile's temporary directory.
    #[prost(string, tag = "3")]
    temp_name: String,
    #[prost(bytes = "vec", tag = "4")]
    keys: Vec<u8>,
    #[prost(bytes = "vec", tag = "5")]
    digest: Vec<u8>,
    #[prost(uint64, tag = "6")]
    blob_size: u64,
    #[prost(uint64, tag = "7")]
    plaintext_size: u64,
    /// The source file as it was encrypted: a change means starting over.
    #[prost(uint64, tag = "8")]
    source_size: u64,
    #[prost(uint64, tag = "9")]
    source_modified_ns: u64,
    #[prost(uint32, tag = "10")]
    chunk_size: u32,
}

impl Drop for UploadState {
    fn drop(&mut self) {
        self.keys.zeroize();
    }
}

/// Reduces a sender's file name to one path component that cannot leave the target folder,
/// hide itself, or carry control characters: the last component after `/` or `\`, without
/// control characters, leading dots and surrounding spaces, at most [`MAX_FILE_NAME_LEN`]
/// bytes; [`FALLBACK_FILE_NAME`] when nothing is left.
pub fn sanitize_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut end = trimmed.len().min(MAX_FILE_NAME_LEN);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let kept = trimmed[..end].trim_end();
    if kept.is_empty() {
        FALLBACK_FILE_NAME.to_owned()
    } else {
        kept.to_owned()
    }
}

/// `name (n).ext` for the `n`th attempt (the plain name for 0).
fn numbered_name(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

/// A content type from the file name's extension, for the common cases.
fn guess_content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// Creates a new file readable and writable by the owner only.
fn create_private_file(path: &Path) -> Result<std::fs::File, AttachmentError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(io_error(path))
}

fn random_name(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    format!("{prefix}-{}.tmp", hex::encode(bytes))
}

/// Reads until `buffer` is full or the file ends; the number of bytes read.
fn read_full(
    file: &mut std::fs::File,
    buffer: &mut [u8],
    path: &Path,
) -> Result<usize, AttachmentError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(path)(error)),
        }
    }
    Ok(filled)
}

/// Size and modification time (ns since the epoch) of a file.
fn fingerprint_of(path: &Path) -> Result<(u64, u64), AttachmentError> {
    let metadata = std::fs::metadata(path).map_err(io_error(path))?;
    if !metadata.is_file() {
        return Err(io_error(path)(std::io::Error::new(
            ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let modified = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Ok((metadata.len(), modified))
}

/// A file uploaded and not yet sent.
struct Uploaded {
    pointer: AttachmentPointer,
    /// The canonical source path, the key of the recorded upload.
    source: String,
    /// The encrypted temporary copy.
    temp_path: PathBuf,
}

impl Client {
    fn attachment_temp_dir(&self) -> Result<PathBuf, AttachmentError> {
        let dir = self.store.dir().join(TEMP_DIR);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(io_error(&dir))?;
        Ok(dir)
    }

    /// Sends the file at `path` to every device of `address`: encrypts it with fresh keys
    /// into a temporary file, uploads it in chunks (calling `progress` after each), then
    /// sends its pointer in an encrypted message. An interrupted upload of the same file
    /// resumes where the server stopped on the next call.
    pub async fn send_attachment(
        &self,
        address: &str,
        path: &Path,
        progress: impl FnMut(Progress),
    ) -> Result<SendReport, AttachmentError> {
        let uploaded = self.upload_attachment(path, progress).await?;
        let body = Body::Attachment(uploaded.pointer.clone());
        let report = self
            .send_body(
                address,
                body,
                Some(("attachment", &uploaded.pointer.file_name)),
            )
            .await?;
        self.finish_upload(uploaded).await?;
        Ok(report)
    }

    /// Sends the file at `path` to a group: one upload, and its pointer sent with the group's
    /// sender key (one ciphertext the server fans out), so every member downloads the same
    /// blob. Resumes an interrupted upload like [`Client::send_attachment`].
    pub async fn send_group_attachment(
        &self,
        group_id: GroupId,
        path: &Path,
        progress: impl FnMut(Progress),
    ) -> Result<GroupSendReport, AttachmentError> {
        let mut uploaded = self.upload_attachment(path, progress).await?;
        uploaded.pointer.group_id = group_id.0.to_vec();
        let file_name = uploaded.pointer.file_name.clone();
        let report = self
            .send_group_body(
                group_id,
                Body::Attachment(uploaded.pointer.clone()),
                ("attachment", &file_name),
            )
            .await?;
        self.finish_upload(uploaded).await?;
        Ok(report)
    }

    /// Forgets a finished upload: its recorded state and its encrypted temporary copy.
    async fn finish_upload(&self, uploaded: Uploaded) -> Result<(), AttachmentError> {
        self.store.delete_upload(&uploaded.source).await?;
        remove_quietly(&uploaded.temp_path);
        wipe_pointer(uploaded.pointer);
        Ok(())
    }

    /// Encrypts the file at `path` (or resumes its recorded upload) and uploads it; returns
    /// the pointer to send. The upload stays recorded until [`Client::finish_upload`].
    async fn upload_attachment(
        &self,
        path: &Path,
        mut progress: impl FnMut(Progress),
    ) -> Result<Uploaded, AttachmentError> {
        let source_path = std::fs::canonicalize(path).map_err(io_error(path))?;
        let source = source_path.to_string_lossy().into_owned();
        let (source_size, source_modified_ns) = fingerprint_of(&source_path)?;
        if source_size > MAX_ATTACHMENT_PLAINTEXT_LEN {
            return Err(AttachmentError::TooLarge {
                size: source_size,
                limit: MAX_ATTACHMENT_PLAINTEXT_LEN,
            });
        }
        let temp_dir = self.attachment_temp_dir()?;
        let mut state = match self.resumable_upload(&source, &temp_dir).await? {
            Some(state)
                if state.source_size == source_size
                    && state.source_modified_ns == source_modified_ns =>
            {
                state
            }
            Some(stale) => {
                remove_quietly(&temp_dir.join(&stale.temp_name));
                self.store.delete_upload(&source).await?;
                self.encrypt_to_temp(&source_path, &temp_dir, source_size, source_modified_ns)?
            }
            None => {
                self.encrypt_to_temp(&source_path, &temp_dir, source_size, source_modified_ns)?
            }
        };
        let temp_path = temp_dir.join(&state.temp_name);
        if state.blob_id.is_empty()
            && let Err(error) = self.create_blob(&source, &mut state).await
        {
            // Nothing recorded refers to the fresh encrypted copy yet.
            remove_quietly(&temp_path);
            return Err(error);
        }
        let result = self.upload_blob(&state, &temp_path, &mut progress).await;
        match result {
            Ok(()) => {}
            // Gone from the server (expired, or never created): upload the same ciphertext
            // again under a new blob; nothing has been sent with the old id.
            Err(AttachmentError::BlobNotFound | AttachmentError::BlobExpired) => {
                self.create_blob(&source, &mut state).await?;
                self.upload_blob(&state, &temp_path, &mut progress).await?;
            }
            Err(error) => return Err(error),
        }
        let file_name = source_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| FALLBACK_FILE_NAME.to_owned());
        let pointer = AttachmentPointer {
            blob_id: state.blob_id.clone(),
            keys: state.keys.clone(),
            digest: state.digest.clone(),
            size: state.blob_size,
            plaintext_size: state.plaintext_size,
            file_name,
            content_type: guess_content_type(&source_path).to_owned(),
            group_id: Vec::new(),
        };
        Ok(Uploaded {
            pointer,
            source,
            temp_path,
        })
    }

    /// The recorded upload of `source`, if any and its temporary file still exists.
    async fn resumable_upload(
        &self,
        source: &str,
        temp_dir: &Path,
    ) -> Result<Option<UploadState>, AttachmentError> {
        let Some(bytes) = self.store.upload(source).await? else {
            return Ok(None);
        };
        let state = match UploadState::decode(bytes.as_slice()) {
            Ok(state)
                if state.version == UPLOAD_STATE_VERSION
                    && state.keys.len() == ATTACHMENT_KEYS_LEN
                    && state.digest.len() == DIGEST_LEN
                    && !state.temp_name.contains(['/', '\\'])
                    && temp_dir.join(&state.temp_name).is_file() =>
            {
                state
            }
            // Unreadable or its temporary file is gone: start over.
            _ => {
                self.store.delete_upload(source).await?;
                return Ok(None);
            }
        };
        Ok(Some(state))
    }

    /// Encrypts the source into a new temporary file with fresh keys.
    fn encrypt_to_temp(
        &self,
        source_path: &Path,
        temp_dir: &Path,
        source_size: u64,
        source_modified_ns: u64,
    ) -> Result<UploadState, AttachmentError> {
        let mut rng = task_rng();
        let keys = AttachmentKeys::generate(&mut rng);
        let temp_name = random_name("upload");
        let temp_path = temp_dir.join(&temp_name);
        let written = (|| {
            let mut input = std::fs::File::open(source_path).map_err(io_error(source_path))?;
            let mut output = create_private_file(&temp_path)?;
            let mut encryptor = AttachmentEncryptor::new(&keys, &mut rng);
            let mut buffer = Zeroizing::new(vec![0u8; IO_BUFFER_LEN]);
            let mut out = Vec::with_capacity(IO_BUFFER_LEN + 64);
            loop {
                let n = read_full(&mut input, &mut buffer, source_path)?;
                if n == 0 {
                    break;
                }
                encryptor.update(&buffer[..n], &mut out).map_err(|_| {
                    AttachmentError::TooLarge {
                        size: source_size,
                        limit: MAX_ATTACHMENT_PLAINTEXT_LEN,
                    }
                })?;
                output.write_all(&out).map_err(io_error(&temp_path))?;
                out.clear();
            }
            let sealed = encryptor.finish(&mut out);
            output.write_all(&out).map_err(io_error(&temp_path))?;
            output.sync_all().map_err(io_error(&temp_path))?;
            Ok::<_, AttachmentError>(sealed)
        })();
        let encrypted = match written {
            Ok(encrypted) => encrypted,
            Err(error) => {
                remove_quietly(&temp_path);
                return Err(error);
            }
        };
        Ok(UploadState {
            version: UPLOAD_STATE_VERSION,
            blob_id: Vec::new(),
            temp_name,
            keys: keys.to_bytes().to_vec(),
            digest: encrypted.digest.to_vec(),
            blob_size: encrypted.blob_len,
            plaintext_size: encrypted.plaintext_len,
            source_size,
            source_modified_ns,
            chunk_size: 0,
        })
    }

    /// Reserves a blob for the upload and records the state (sealed) before any chunk leaves.
    async fn create_blob(
        &self,
        source: &str,
        state: &mut UploadState,
    ) -> Result<(), AttachmentError> {
        let response = self
            .request(RequestBody::BlobCreate {
                size: state.blob_size,
            })
            .await
            .map_err(blob_refusal)?;
        let ResponseBody::BlobCreated {
            blob_id,
            chunk_size,
            ..
        } = response
        else {
            return Err(RequestError::UnexpectedResponse.into());
        };
        if chunk_size == 0 {
            return Err(AttachmentError::Protocol("chunk size 0".into()));
        }
        state.blob_id = blob_id.0.to_vec();
        state.chunk_size = chunk_size;
        self.store
            .save_upload(source, &Zeroizing::new(state.encode_to_vec()))
            .await?;
        Ok(())
    }

    /// Uploads the temporary file from where the server says it stopped.
    async fn upload_blob(
        &self,
        state: &UploadState,
        temp_path: &Path,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), AttachmentError> {
        let blob_id = BlobId(
            state
                .blob_id
                .as_slice()
                .try_into()
                .map_err(|_| AttachmentError::Protocol("blob id length".into()))?,
        );
        let status = self
            .request(RequestBody::BlobStatus { blob_id })
            .await
            .map_err(blob_refusal)?;
        let ResponseBody::BlobStatus(status) = status else {
            return Err(RequestError::UnexpectedResponse.into());
        };
        if status.size != state.blob_size || status.received > status.size {
            return Err(AttachmentError::Protocol(
                "blob status disagrees with the upload".into(),
            ));
        }
        let total = state.blob_size;
        let mut offset = status.received;
        progress(Progress {
            done: offset,
            total,
        });
        let chunk_len = (state.chunk_size as usize).clamp(1, MAX_BLOB_CHUNK_LEN);
        let mut file = std::fs::File::open(temp_path).map_err(io_error(temp_path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(io_error(temp_path))?;
        let mut buffer = vec![0u8; chunk_len];
        let mut resyncs = 0u32;
        while offset < total {
            let want =
                usize::try_from(total - offset).map_or(chunk_len, |left| left.min(chunk_len));
            let n = read_full(&mut file, &mut buffer[..want], temp_path)?;
            if n != want {
                return Err(io_error(temp_path)(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the encrypted attachment was truncated",
                )));
            }
            let response = match self
                .request(RequestBody::BlobUpload {
                    blob_id,
                    offset,
                    chunk: buffer[..n].to_vec(),
                })
                .await
            {
                Ok(response) => response,
                // The server holds more than this client thought: a chunk sent just before an
                // earlier connection closed arrived after the status was read. Ask again and
                // go on from there (the server keeps only identical bytes at an offset).
                Err(ClientError::Request(RequestError::Refused(ref refusal)))
                    if refusal.code == ErrorCode::BadRequest && resyncs < MAX_UPLOAD_RESYNCS =>
                {
                    resyncs += 1;
                    let status = self
                        .request(RequestBody::BlobStatus { blob_id })
                        .await
                        .map_err(blob_refusal)?;
                    let ResponseBody::BlobStatus(status) = status else {
                        return Err(RequestError::UnexpectedResponse.into());
                    };
                    if status.received <= offset || status.received > total {
                        return Err(AttachmentError::Protocol(format!(
                            "the server refused the chunk at {offset} and holds {}",
                            status.received
                        )));
                    }
                    offset = status.received;
                    file.seek(SeekFrom::Start(offset))
                        .map_err(io_error(temp_path))?;
                    progress(Progress {
                        done: offset,
                        total,
                    });
                    continue;
                }
                Err(error) => return Err(blob_refusal(error)),
            };
            let ResponseBody::BlobStatus(status) = response else {
                return Err(RequestError::UnexpectedResponse.into());
            };
            if status.received != offset + n as u64 {
                return Err(AttachmentError::Protocol(format!(
                    "uploaded up to {} but the server holds {}",
                    offset + n as u64,
                    status.received
                )));
            }
            offset = status.received;
            progress(Progress {
                done: offset,
                total,
            });
        }
        Ok(())
    }

    /// The attachment carried by history message `message_id`, if any (without its keys).
    pub async fn attachment(
        &self,
        message_id: i64,
    ) -> Result<Option<IncomingAttachment>, AttachmentError> {
        let Some(bytes) = self.store.attachment_pointer(message_id).await? else {
            return Ok(None);
        };
        let pointer = AttachmentPointer::decode(bytes.as_slice())
            .map_err(|_| StoreError::Corrupt("attachment pointer".into()))?;
        let incoming = IncomingAttachment {
            message_id,
            file_name: pointer.file_name.clone(),
            content_type: pointer.content_type.clone(),
            plaintext_size: pointer.plaintext_size,
            blob_size: pointer.size,
        };
        wipe_pointer(pointer);
        Ok(Some(incoming))
    }

    /// Downloads the attachment of history message `message_id`, verifies it and decrypts it
    /// into `dir` under its sanitised name (never replacing a file: a numbered suffix is
    /// added). `progress` is called after each downloaded chunk.
    pub async fn save_attachment(
        &self,
        message_id: i64,
        dir: &Path,
        progress: impl FnMut(Progress),
    ) -> Result<SavedAttachment, AttachmentError> {
        let bytes = self
            .store
            .attachment_pointer(message_id)
            .await?
            .ok_or(AttachmentError::NoAttachment(message_id))?;
        let pointer = AttachmentPointer::decode(bytes.as_slice())
            .map_err(|_| StoreError::Corrupt("attachment pointer".into()))?;
        let result = self.save_pointer(&pointer, dir, progress).await;
        wipe_pointer(pointer);
        result
    }

    /// Like [`Client::save_attachment`] for a pointer the caller holds.
    pub async fn save_pointer(
        &self,
        pointer: &AttachmentPointer,
        dir: &Path,
        mut progress: impl FnMut(Progress),
    ) -> Result<SavedAttachment, AttachmentError> {
        let checked = CheckedPointer::check(pointer)?;
        let temp_dir = self.attachment_temp_dir()?;
        let blob_path = temp_dir.join(random_name("download"));
        let result = self
            .download_and_decrypt(&checked, &blob_path, dir, &mut progress)
            .await;
        remove_quietly(&blob_path);
        result
    }

    async fn download_and_decrypt(
        &self,
        pointer: &CheckedPointer,
        blob_path: &Path,
        dir: &Path,
        progress: &mut impl FnMut(Progress),
    ) -> Result<SavedAttachment, AttachmentError> {
        let verified = {
            let mut blob = create_private_file(blob_path)?;
            let mut verifier = AttachmentVerifier::new(
                AttachmentKeys::from_bytes(&pointer.keys.to_bytes()),
                pointer.blob_size,
                pointer.digest,
            )
            .map_err(verify_error)?;
            let total = pointer.blob_size;
            let mut offset = 0u64;
            progress(Progress { done: 0, total });
            while offset < total {
                let length = u32::try_from((total - offset).min(MAX_BLOB_CHUNK_LEN as u64))
                    .map_err(|_| AttachmentError::Protocol("chunk length".into()))?;
                let response = self
                    .request(RequestBody::BlobDownload {
                        blob_id: pointer.blob_id,
                        offset,
                        length,
                    })
                    .await
                    .map_err(blob_refusal)?;
                let ResponseBody::BlobChunk {
                    blob_id,
                    offset: at,
                    size,
                    data,
                } = response
                else {
                    return Err(RequestError::UnexpectedResponse.into());
                };
                if blob_id != pointer.blob_id || at != offset {
                    return Err(AttachmentError::Protocol(
                        "a chunk of another blob or offset".into(),
                    ));
                }
                if size != total {
                    return Err(AttachmentError::WrongLength(format!(
                        "the server holds {size} bytes, the sender announced {total}"
                    )));
                }
                if data.is_empty() || data.len() > length as usize {
                    return Err(AttachmentError::Protocol(format!(
                        "asked for {length} bytes, got {}",
                        data.len()
                    )));
                }
                verifier.update(&data).map_err(verify_error)?;
                blob.write_all(&data).map_err(io_error(blob_path))?;
                offset += data.len() as u64;
                progress(Progress {
                    done: offset,
                    total,
                });
            }
            blob.sync_all().map_err(io_error(blob_path))?;
            verifier.finish().map_err(verify_error)?
        };
        // Verified: decrypt the same bytes into a hidden file in the target folder, then give
        // it its final name without replacing anything.
        let name = sanitize_file_name(&pointer.file_name);
        let partial = dir.join(format!(".{}", random_name("confianza-part")));
        let decrypted = (|| {
            let mut input = std::fs::File::open(blob_path).map_err(io_error(blob_path))?;
            let mut output = create_private_file(&partial)?;
            let mut decryptor = verified.into_decryptor();
            let mut buffer = vec![0u8; IO_BUFFER_LEN];
            let mut out = Zeroizing::new(Vec::with_capacity(IO_BUFFER_LEN + 16));
            loop {
                let n = read_full(&mut input, &mut buffer, blob_path)?;
                if n == 0 {
                    break;
                }
                decryptor
                    .update(&buffer[..n], &mut out)
                    .map_err(decrypt_error)?;
                output.write_all(&out).map_err(io_error(&partial))?;
                out.clear();
            }
            let size = decryptor.finish().map_err(decrypt_error)?;
            output.sync_all().map_err(io_error(&partial))?;
            Ok::<_, AttachmentError>(size)
        })();
        let size = match decrypted {
            Ok(size) => size,
            Err(error) => {
                remove_quietly(&partial);
                return Err(error);
            }
        };
        let placed = place_without_overwrite(&partial, dir, &name);
        remove_quietly(&partial);
        Ok(SavedAttachment {
            path: placed?,
            size,
        })
    }
}

/// Links `partial` into `dir` as `name`, or `name (n)` when taken; the link fails rather than
/// replace an existing file, so a race with another writer cannot clobber anything.
fn place_without_overwrite(
    partial: &Path,
    dir: &Path,
    name: &str,
) -> Result<PathBuf, AttachmentError> {
    for n in 0..=MAX_NAME_SUFFIX {
        let target = dir.join(numbered_name(name, n));
        match std::fs::hard_link(partial, &target) {
            Ok(()) => return Ok(target),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io_error(&target)(error)),
        }
    }
    Err(AttachmentError::NoFreeName(name.to_owned()))
}

fn remove_quietly(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "could not remove a temporary attachment file");
    }
}

fn wipe_pointer(mut pointer: AttachmentPointer) {
    pointer.keys.zeroize();
}

fn verify_error(error: VerifyError) -> AttachmentError {
    match error {
        VerifyError::BadMac => AttachmentError::MacMismatch,
        VerifyError::BadDigest => AttachmentError::DigestMismatch,
        VerifyError::TooLarge { blob_len, limit } => AttachmentError::TooLarge {
            size: blob_len,
            limit,
        },
        other => AttachmentError::WrongLength(other.to_string()),
    }
}

fn decrypt_error(error: DecryptError) -> AttachmentError {
    match error {
        // The blob passed its MAC, so a change now means the temporary file was altered.
        DecryptError::BadPadding | DecryptError::BlobChanged => AttachmentError::MacMismatch,
        other => AttachmentError::WrongLength(other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_in_the_folder() {
        assert_eq!(sanitize_file_name("../../etc/x"), "x");
        assert_eq!(sanitize_file_name("..\\..\\windows\\y.exe"), "y.exe");
        assert_eq!(sanitize_file_name("/etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name(".."), FALLBACK_FILE_NAME);
        assert_eq!(sanitize_file_name("../"), FALLBACK_FILE_NAME);
        assert_eq!(sanitize_file_name(""), FALLBACK_FILE_NAME);
        assert_eq!(sanitize_file_name(".bashrc"), "bashrc");
        assert_eq!(sanitize_file_name("a\u{0}b\nc\u{1b}.txt"), "abc.txt");
        assert_eq!(sanitize_file_name("  report.pdf  "), "report.pdf");
    }

    #[test]
    fn names_are_cut_at_the_limit_on_a_char_boundary() {
        let at_limit = "a".repeat(MAX_FILE_NAME_LEN);
        assert_eq!(sanitize_file_name(&at_limit), at_limit);
        let over = "a".repeat(MAX_FILE_NAME_LEN + 1);
        assert_eq!(sanitize_file_name(&over).len(), MAX_FILE_NAME_LEN);
        let wide = "é".repeat(MAX_FILE_NAME_LEN);
        let cut = sanitize_file_name(&wide);
        assert!(cut.len() <= MAX_FILE_NAME_LEN);
        assert_eq!(cut.len(), MAX_FILE_NAME_LEN);
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered_name("a.txt", 0), "a.txt");
        assert_eq!(numbered_name("a.txt", 2), "a (2).txt");
        assert_eq!(numbered_name("archive", 1), "archive (1)");
        assert_eq!(numbered_name("a.tar.gz", 1), "a.tar (1).gz");
    }

    #[test]
    fn free_names_run_out_after_the_last_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join("partial");
        std::fs::write(&partial, b"x").unwrap();
        let target = tempfile::tempdir().unwrap();
        for n in 0..=MAX_NAME_SUFFIX {
            std::fs::write(target.path().join(numbered_name("f", n)), b"taken").unwrap();
        }
        assert!(matches!(
            place_without_overwrite(&partial, target.path(), "f"),
            Err(AttachmentError::NoFreeName(_))
        ));
        std::fs::remove_file(target.path().join(numbered_name("f", MAX_NAME_SUFFIX))).unwrap();
        let placed = place_without_overwrite(&partial, target.path(), "f").unwrap();
        assert_eq!(
            placed,
            target.path().join(numbered_name("f", MAX_NAME_SUFFIX))
        );
        assert_eq!(std::fs::read(placed).unwrap(), b"x");
    }

    fn pointer(plaintext_size: u64) -> AttachmentPointer {
        AttachmentPointer {
            blob_id: vec![1; 16],
            keys: vec![2; ATTACHMENT_KEYS_LEN],
            digest: vec![3; DIGEST_LEN],
            size: blob_len(plaintext_size),
            plaintext_size,
            file_name: "f".into(),
            content_type: "text/plain".into(),
            group_id: Vec::new(),
        }
    }

    #[test]
    fn pointers_are_checked_before_any_download() {
        assert!(CheckedPointer::check(&pointer(10)).is_ok());
        let at_limit = pointer(MAX_ATTACHMENT_PLAINTEXT_LEN);
        assert!(CheckedPointer::check(&at_limit).is_ok());
        let mut over = pointer(MAX_ATTACHMENT_PLAINTEXT_LEN);
        over.plaintext_size += 16;
        over.size = blob_len(over.plaintext_size);
        assert!(matches!(
            CheckedPointer::check(&over),
            Err(AttachmentError::TooLarge { .. })
        ));
        let mut mismatched = pointer(10);
        mismatched.size += 16;
        assert!(matches!(
            CheckedPointer::check(&mismatched),
            Err(AttachmentError::BadPointer(_))
        ));
        let mut short_keys = pointer(10);
        short_keys.keys.pop();
        assert!(matches!(
            CheckedPointer::check(&short_keys),
            Err(AttachmentError::BadPointer(_))
        ));
        let mut type_at_limit = pointer(10);
        type_at_limit.content_type = "t".repeat(MAX_CONTENT_TYPE_LEN);
        assert!(CheckedPointer::check(&type_at_limit).is_ok());
        type_at_limit.content_type.push('t');
        assert!(matches!(
            CheckedPointer::check(&type_at_limit),
            Err(AttachmentError::BadPointer(_))
        ));
    }

    #[test]
    fn upload_state_round_trips() {
        let state = UploadState {
            version: UPLOAD_STATE_VERSION,
            blob_id: vec![7; 16],
            temp_name: "upload-x.tmp".into(),
            keys: vec![9; ATTACHMENT_KEYS_LEN],
            digest: vec![4; DIGEST_LEN],
            blob_size: 64,
            plaintext_size: 10,
            source_size: 10,
            source_modified_ns: 5,
            chunk_size: 1024,
        };
        let decoded = UploadState::decode(state.encode_to_vec().as_slice()).unwrap();
        assert!(decoded == state);
    }
}
