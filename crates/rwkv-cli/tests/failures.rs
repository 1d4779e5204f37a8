//! Failure paths end: a store whose disk fills (a 3 MB tmpfs where mounting is allowed, and a
//! file-size limit everywhere), a fold worker that panics, a read-only store and an input that
//! vanished each stop `rwkv-ingest` within seconds with a named error (exit 2), and the next run
//! with room ends with the store an uninterrupted run makes (manifest and blob bytes).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{blobs, manifest, root};

/// The inputs every run here ingests: a code base and a book (several documents, checkpoints).
const INPUTS: [&str; 2] = ["fixtures/code", "fixtures/books/lighthouse.txt"];

fn ingest(store: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"));
    c.current_dir(root())
        .args(INPUTS)
        .args(["--checkpoint-every", "64", "--json", "--store"])
        .arg(store)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Runs `c`, killing it after `limit` (a hang is a failure, not a wait).
fn run_within(mut c: Command, limit: Duration) -> (Output, Duration) {
    let t0 = Instant::now();
    let mut child = c.spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), t0.elapsed());
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}: a hang\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A store's manifest and blob bytes.
type Snapshot = (
    Vec<(String, String, Vec<String>)>,
    std::collections::BTreeMap<PathBuf, Vec<u8>>,
);

fn snapshot(store: &Path) -> Snapshot {
    (manifest(store), blobs(store))
}

/// The store an uninterrupted run makes.
fn clean_store(tmp: &Path) -> PathBuf {
    let clean = tmp.join("clean");
    let (out, _) = run_within(ingest(&clean, &[]), Duration::from_secs(300));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    clean
}

/// A failed run: exit 2 within 30 s, the message on stderr; then the rerun with room completes
/// and the store equals the uninterrupted one.
fn fails_then_resumes(what: &str, failed: Command, store: &Path, clean: &Path, must_say: &[&str]) {
    let (out, took) = run_within(failed, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: exit code; stderr: {stderr}");
    assert!(took < Duration::from_secs(30), "{what}: took {took:?}");
    for s in must_say {
        assert!(stderr.contains(s), "{what}: stderr does not say {s:?}: {stderr}");
    }
    let (out, _) = run_within(ingest(store, &[]), Duration::from_secs(300));
    assert!(
        out.status.success(),
        "{what}: rerun: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        snapshot(store) == snapshot(clean),
        "{what}: the resumed store differs from an uninterrupted run's"
    );
}

#[test]
fn a_full_disk_a_panicking_worker_and_a_failed_write_end_the_run_and_the_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let clean = clean_store(tmp.path());
    assert!(!blobs(&clean).is_empty());

    // 1. A real full disk: the store on a 3 MB tmpfs (where this machine lets us mount one).
    let mnt = tmp.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let store = mnt.join("store");
        let (out, took) = run_within(ingest(&store, &[]), Duration::from_secs(120));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let _ = Command::new("umount").arg(&mnt).status();
        assert_eq!(out.status.code(), Some(2), "full disk: stderr: {stderr}");
        assert!(took < Duration::from_secs(30), "full disk: took {took:?}");
        assert!(
            stderr.contains("No space left on device") && stderr.contains("store"),
            "full disk: {stderr}"
        );
    } else {
        eprintln!("cannot mount a tmpfs here: the full-disk case runs as a file-size limit only");
    }

    // 2. A write that fails (every file capped at 100 kB, SIGXFSZ ignored so the write returns
    //    an error), on every machine: then the rerun.
    let store = tmp.path().join("capped");
    let mut capped = Command::new("sh");
    capped
        .current_dir(root())
        .arg("-c")
        .arg("trap '' XFSZ; exec prlimit --fsize=100000 \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_rwkv-ingest"))
        .args(INPUTS)
        .args(["--checkpoint-every", "64", "--json", "--store"])
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    fails_then_resumes("file-size limit", capped, &store, &clean, &["File too large"]);

    // 3. A fold worker that panics (the test hook), one document a time and in lanes: the panic
    //    names the document.
    for extra in [&["--fold-jobs", "2"][..], &["--lanes", "3", "--fold-jobs", "1"][..]] {
        let store = tmp.path().join(format!("panic{}", extra.len()));
        let mut c = ingest(&store, extra);
        c.env("RWKV_TEST_PANIC_ON", "src/main.rs");
        fails_then_resumes(
            &format!("panic {extra:?}"),
            c,
            &store,
            &clean,
            &["panicked", "src/main.rs", "injected test panic"],
        );
    }
}

#[test]
fn a_read_only_store_and_a_vanished_input_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // An input that is not there: named, and nothing is written.
    let store = tmp.path().join("s");
    let mut c = Command::new(env!("CARGO_BIN_EXE_rwkv-ingest"));
    c.current_dir(root())
        .arg(tmp.path().join("no-such-dir"))
        .arg("--store")
        .arg(&store)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (out, _) = run_within(c, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no-such-dir") && stderr.contains("No such file"),
        "{stderr}"
    );
    assert!(!store.join("manifest.redb").exists());

    // A read-only store: a tmpfs remounted read-only where mounting is allowed, else a chmod
    // (which does not stop root: then there is nothing to test).
    let mnt = tmp.path().join("ro-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |args: &[&str]| {
        Command::new("mount")
            .args(args)
            .arg(&mnt)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mounted = mount(&["-t", "tmpfs", "-o", "size=64m", "tmpfs"]);
    let ro = if mounted {
        mnt.join("store")
    } else {
        tmp.path().join("ro")
    };
    let (out, _) = run_within(ingest(&ro, &[]), Duration::from_secs(300));
    assert!(out.status.success());
    // Something new for the read-only store to write.
    let book = tmp.path().join("new.md");
    std::fs::write(&book, "# A new note\n\nSomething the store has not seen.\n").unwrap();
    let chmod = |mode: &str| {
        assert!(
            Command::new("chmod")
                .args(["-R", mode])
                .arg(&ro)
                .status()
                .unwrap()
                .success()
        );
    };
    if mounted {
        assert!(mount(&["-o", "remount,ro"]), "remount read-only");
    } else {
        chmod("a-w");
        if std::fs::write(ro.join("probe"), b"x").is_ok() {
            eprintln!("running as root without mount: a read-only store cannot be made; skipped");
            let _ = std::fs::remove_file(ro.join("probe"));
            chmod("u+w");
            return;
        }
    }
    let mut c = ingest(&ro, &[]);
    c.arg(&book);
    let (out, took) = run_within(c, Duration::from_secs(120));
    if mounted {
        let _ = Command::new("umount").arg(&mnt).status();
    } else {
        chmod("u+w");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(30));
    assert!(
        stderr.contains("Permission denied") || stderr.contains("Read-only file system"),
        "{stderr}"
    );
}
