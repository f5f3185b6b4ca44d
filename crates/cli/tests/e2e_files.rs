//! `confianza send ADDRESS --file PATH` and `confianza receive --save-dir DIR` end to end
//! against a real `confianza-server` process: a file arrives byte for byte, a blob altered on
//! the server is refused while later messages still arrive, and an unreadable file is a
//! one-line error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use e2e_support::{Server, User, messages_from, stderr, stdout};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// Size of the file sent: several upload chunks, not a multiple of the AES block.
const FILE_LEN: usize = 300 * 1024 + 7;

/// Deterministic, non-repeating content of `len` bytes.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect()
}

/// Size of the encrypted blob of a `len`-byte file: IV, CBC with PKCS#7 padding, MAC.
fn blob_len(len: usize) -> usize {
    16 + (len / 16 + 1) * 16 + 32
}

/// Every file under the server's blob store.
fn blob_files(server: &Server) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path);
            }
        }
    }
    let mut files = BTreeSet::new();
    walk(&server.data.path().join("blobs"), &mut files);
    files
}

/// Names of the files in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_file_arrives_intact_a_tampered_one_is_refused_and_a_missing_one_is_an_error() {
    let server = Server::start();
    let alice = User::new(ALICE);
    let bob = User::new(BOB);
    alice.init(&server);
    bob.init(&server);
    let outbox = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let save_dir = downloads.path().to_str().unwrap();

    // A 300 KiB file, sent while Bob is offline (stderr is not a terminal: no progress bar).
    let bytes = content(FILE_LEN);
    let file = outbox.path().join("report.bin");
    std::fs::write(&file, &bytes).unwrap();
    let out = alice.run(&["send", BOB, "--file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.contains(&format!(
            "sent {} ({FILE_LEN} bytes, blob {} bytes)",
            file.display(),
            blob_len(FILE_LEN)
        )),
        "{line}"
    );
    assert!(
        line.contains("to bob@example.org (1 device, certified)"),
        "{line}"
    );
    assert!(!stderr(&out).contains("resuming"), "{}", stderr(&out));

    let out = bob.ok(&["receive", "--save-dir", save_dir]);
    let lines = messages_from(&out, ALICE);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].ends_with("(attachment \"report.bin\")"), "{out}");
    let saved = downloads.path().join("report.bin");
    assert!(
        out.contains(&format!(
            "saved {} ({FILE_LEN} bytes) from {ALICE} [certified]",
            saved.display()
        )),
        "{out}"
    );
    assert_eq!(std::fs::read(&saved).unwrap(), bytes);

    // A second file whose blob is altered on the server: refused, nothing written, and the
    // text sent after it still arrives.
    let before = blob_files(&server);
    let second = outbox.path().join("second.bin");
    std::fs::write(&second, content(10_000)).unwrap();
    alice.ok(&["send", BOB, "--file", second.to_str().unwrap()]);
    alice.ok(&["send", BOB, "after the file"]);
    let fresh: Vec<PathBuf> = blob_files(&server).difference(&before).cloned().collect();
    assert!(!fresh.is_empty(), "the blob store holds the new blob");
    for chunk in &fresh {
        let mut stored = std::fs::read(chunk).unwrap();
        let middle = stored.len() / 2;
        stored[middle] ^= 1;
        std::fs::write(chunk, stored).unwrap();
    }
    let out = bob.run(&["receive", "--save-dir", save_dir]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let error = stderr(&out);
    assert!(
        error.contains(&format!(
            "refused the attachment \"second.bin\" from {ALICE}: the attachment's MAC does not \
             match: it was altered; nothing was saved"
        )),
        "{error}"
    );
    assert!(
        error.contains("confianza: 1 attachment could not be saved"),
        "{error}"
    );
    let text = stdout(&out);
    assert!(
        messages_from(&text, ALICE)
            .iter()
            .any(|line| line.ends_with(": after the file")),
        "{text}"
    );
    assert_eq!(names(downloads.path()), ["report.bin"]);

    // A file that cannot be read: one line, non-zero exit, nothing sent.
    let missing = outbox.path().join("missing.bin");
    let error = alice.fails(&["send", BOB, "--file", missing.to_str().unwrap()]);
    assert!(error.contains("cannot send"), "{error}");
    assert!(error.contains("missing.bin"), "{error}");
    let out = bob.run(&["receive", "--save-dir", save_dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(messages_from(&stdout(&out), ALICE).is_empty(), "{out:?}");

    // --file with a text is a usage error.
    let out = alice.run(&["send", BOB, "hello", "--file", file.to_str().unwrap()]);
    assert!(!out.status.success());
}

/// Size of the file whose upload is interrupted: enough 32 KiB chunks that the upload is
/// still running when the test sees the first few on the server.
const LARGE_FILE_LEN: usize = 8 * 1024 * 1024;

/// Chunks the server must hold before the upload is interrupted.
const CHUNKS_BEFORE_KILL: usize = 4;

#[test]
fn an_interrupted_send_resumes_when_run_again() {
    let server = Server::start();
    let alice = User::new(ALICE);
    let bob = User::new(BOB);
    alice.init(&server);
    bob.init(&server);
    let outbox = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let bytes = content(LARGE_FILE_LEN);
    let file = outbox.path().join("large.bin");
    std::fs::write(&file, &bytes).unwrap();
    let path = file.to_str().unwrap();

    // Kill the first send once a few chunks are on the server.
    let mut child = alice
        .command(&["send", BOB, "--file", path])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + e2e_support::PATIENCE;
    while blob_files(&server).len() < CHUNKS_BEFORE_KILL {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the send ended before it could be interrupted"
        );
        assert!(std::time::Instant::now() < deadline, "no upload started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the send was interrupted");

    // The same command again resumes and says where.
    let out = alice.run(&["send", BOB, "--file", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let error = stderr(&out);
    let resumed_at: u64 = error
        .lines()
        .find_map(|line| line.strip_prefix("resuming at "))
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .expect("a resuming line")
        .parse()
        .unwrap();
    assert!(resumed_at > 0, "{error}");
    assert!(resumed_at < LARGE_FILE_LEN as u64, "{error}");
    assert!(
        stdout(&out).contains(&format!("({LARGE_FILE_LEN} bytes, blob ")),
        "{}",
        stdout(&out)
    );

    let out = bob.ok(&["receive", "--save-dir", downloads.path().to_str().unwrap()]);
    assert_eq!(messages_from(&out, ALICE).len(), 1, "{out}");
    assert!(
        std::fs::read(downloads.path().join("large.bin")).unwrap() == bytes,
        "the resumed file arrives intact"
    );
}

#[test]
fn a_file_sent_to_a_group_is_uploaded_once_and_saved_by_every_member() {
    const CAROL: &str = "carol@example.org";
    let server = Server::start();
    let alice = User::new(ALICE);
    let bob = User::new(BOB);
    let carol = User::new(CAROL);
    for user in [&alice, &bob, &carol] {
        user.init(&server);
    }
    alice.ok(&["group", "create", "design", BOB, CAROL]);
    let outbox = tempfile::tempdir().unwrap();
    let bytes = content(FILE_LEN);
    let file = outbox.path().join("mockup.png");
    std::fs::write(&file, &bytes).unwrap();
    let before = blob_files(&server);
    let out = alice.ok(&[
        "send",
        "--group",
        "design",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.starts_with(&format!(
            "sent {} ({FILE_LEN} bytes, blob {} bytes) to group design",
            file.display(),
            blob_len(FILE_LEN)
        )),
        "{out}"
    );
    // One upload: the new chunks hold one copy of the blob.
    let stored: usize = blob_files(&server)
        .difference(&before)
        .map(|path| std::fs::metadata(path).unwrap().len() as usize)
        .sum();
    assert_eq!(stored, blob_len(FILE_LEN));
    for member in [&bob, &carol] {
        let downloads = tempfile::tempdir().unwrap();
        let out = member.ok(&["receive", "--save-dir", downloads.path().to_str().unwrap()]);
        let marker = format!("  {ALICE} in design [certified]: ");
        let lines: Vec<&str> = out.lines().filter(|line| line.contains(&marker)).collect();
        assert_eq!(lines.len(), 1, "{out}");
        assert!(lines[0].contains("(attachment \"mockup.png\")"), "{out}");
        assert_eq!(names(downloads.path()), ["mockup.png"]);
        assert_eq!(
            std::fs::read(downloads.path().join("mockup.png")).unwrap(),
            bytes
        );
    }
    // ADDRESS and --group together are refused.
    let error = alice.fails(&[
        "send",
        BOB,
        "--group",
        "design",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(error.contains("--group NAME --file PATH"), "{error}");
}
