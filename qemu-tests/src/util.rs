//! Errors, cache locations, locks and command helpers shared by the harness.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A harness failure, with enough text (command, stderr, console tail) to
/// act on without rerunning.
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Debug is what `unwrap()` prints: keep multi-line messages readable.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error(msg.into()))
}

/// Attach the path to an io error.
pub(crate) fn io<T>(r: std::io::Result<T>, what: &str, path: &Path) -> Result<T> {
    r.map_err(|e| Error(format!("{what} {}: {e}", path.display())))
}

/// The workspace root (the repository or worktree holding qemu-tests/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("qemu-tests has a parent").to_path_buf()
}

/// Where kernels, initramfs images and scenario work directories live:
/// `$ROOTSTOCK_QEMU_CACHE`, else `<repo>/.cache` (git-ignored).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("ROOTSTOCK_QEMU_CACHE").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".cache"))
}

/// A tmpfs for ostree sysroots (`ostree admin deploy` freezes the filesystem
/// holding boot/): `$ROOTSTOCK_TEST_TMPFS`, else /dev/shm.
pub fn tmpfs_dir() -> PathBuf {
    std::env::var_os("ROOTSTOCK_TEST_TMPFS").map(PathBuf::from).unwrap_or_else(|| "/dev/shm".into())
}

/// An exclusive lock on `<cache>/NAME.lock`, held until dropped; serializes
/// cache fills and QEMU runs across threads and processes.
pub fn lock(name: &str) -> Result<File> {
    let dir = cache_dir();
    io(std::fs::create_dir_all(&dir), "create", &dir)?;
    let path = dir.join(format!("{name}.lock"));
    let f = io(File::create(&path), "create", &path)?;
    io(f.lock(), "lock", &path)?;
    Ok(f)
}

/// Run a command to completion; its stdout on success, else an error naming
/// the command with the end of its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error(format!("cannot run {:?}: {e}", cmd.get_program())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return err(format!("{cmd:?} failed ({}):\n{}", out.status, tail(&stderr, 40)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// 64-bit FNV-1a: a stable cache key (std's hasher may change between releases).
pub(crate) fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
