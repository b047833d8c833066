//! Reading untrusted files without blocking, without unbounded memory, and
//! (inside the physical root) without leaving the root.
//!
//! Every file is opened `O_NONBLOCK` (a FIFO cannot block), checked to be a
//! regular file with `fstat` (a device such as `/dev/zero` is never read),
//! and read up to a cap that the error names. Inside the physical root a
//! path is opened relative to a directory fd of the root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, or, on kernels
//! without `openat2`, resolved by [`crate::resolve`]'s `O_NOFOLLOW` walk.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};

use crate::errno::Errno;
use crate::resolve::{ResolveError, resolve_at};

/// The cap for small text files: BLS entries, the kernel command line, the
/// config, the state file.
pub const SMALL_FILE_CAP: u64 = 1 << 20;

/// Why an untrusted file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {errno}", path.display())]
    Open { path: PathBuf, errno: Errno },
    #[error("{}: {error}", path.display())]
    Resolve { path: PathBuf, error: ResolveError },
    #[error("{}: not a regular file (a {kind}): refused", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: larger than the {cap}-byte limit: refused", path.display())]
    TooLarge { path: PathBuf, cap: u64 },
}

impl ReadError {
    /// The errno that best says what went wrong.
    pub fn errno(&self) -> Errno {
        match self {
            ReadError::Open { errno, .. } => *errno,
            ReadError::Resolve { error, .. } => match error {
                ResolveError::Missing { errno, .. } => *errno,
                ResolveError::NotADirectory { .. } => Errno::NOTDIR,
                ResolveError::Loop { .. } => Errno::LOOP,
                ResolveError::Escapes { .. } => Errno::XDEV,
            },
            ReadError::NotRegular { .. } => Errno::INVAL,
            ReadError::TooLarge { .. } => Errno::FBIG,
        }
    }

    /// The file does not exist.
    pub fn is_not_found(&self) -> bool {
        self.errno() == Errno::NOENT
    }
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Fifo => "FIFO",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Directory => "directory",
        FileType::Socket => "socket",
        FileType::Symlink => "symlink",
        _ => "special file",
    }
}

/// Check that `fd` is a regular file, then read at most `cap` bytes.
fn read_fd(fd: OwnedFd, path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let open_err = |errno| ReadError::Open { path: path.to_path_buf(), errno };
    let st = rustix::fs::fstat(&fd).map_err(|e| open_err(e.into()))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(ReadError::NotRegular { path: path.to_path_buf(), kind: kind_name(kind) });
    }
    if st.st_size as u64 > cap {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), cap });
    }
    let mut out = Vec::new();
    let file = std::fs::File::from(fd);
    // One byte more than the cap tells a file that grew past it.
    file.take(cap + 1).read_to_end(&mut out).map_err(|e| open_err(Errno::from_io(&e)))?;
    if out.len() as u64 > cap {
        return Err(ReadError::TooLarge { path: path.to_path_buf(), cap });
    }
    Ok(out)
}

const READ_FLAGS: OFlags =
    OFlags::RDONLY.union(OFlags::NONBLOCK).union(OFlags::CLOEXEC).union(OFlags::NOCTTY);

/// Read a file given on the command line (`--cmdline`, `--config`, ...):
/// `O_NONBLOCK`, regular, at most `cap` bytes.
pub fn read_file(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let fd = rustix::fs::open(path, READ_FLAGS, Mode::empty())
        .map_err(|e| ReadError::Open { path: path.to_path_buf(), errno: e.into() })?;
    read_fd(fd, path, cap)
}

/// [`read_file`] as UTF-8 text (invalid bytes replaced).
pub fn read_text(path: &Path, cap: u64) -> Result<String, ReadError> {
    read_file(path, cap).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A directory fd of `root` (the physical root).
pub fn open_root(root: &Path) -> Result<OwnedFd, ReadError> {
    rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ReadError::Open { path: root.to_path_buf(), errno: e.into() })
}

/// Open `rel` inside the root `root` (symlinks resolved in the root, never
/// outside it, no magic links) with `flags`.
pub fn open_in_root(root: impl AsFd, rel: &Path, flags: OFlags) -> Result<OwnedFd, ReadError> {
    let shown = Path::new("/").join(rel);
    match rustix::fs::openat2(
        &root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => return Ok(fd),
        // A kernel before 5.6, or a seccomp filter that hides openat2.
        Err(rustix::io::Errno::NOSYS) => {}
        Err(e) => return Err(ReadError::Open { path: shown, errno: e.into() }),
    }
    // No openat2: resolve by hand, then open the result without following.
    let dup = rustix::io::fcntl_dupfd_cloexec(&root, 0)
        .map_err(|e| ReadError::Open { path: shown.clone(), errno: e.into() })?;
    let resolved =
        resolve_at(&dup, rel).map_err(|error| ReadError::Resolve { path: shown.clone(), error })?;
    let target = if resolved.as_os_str().is_empty() { PathBuf::from(".") } else { resolved };
    rustix::fs::openat(&root, &target, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ReadError::Open { path: shown, errno: e.into() })
}

/// Read `rel` inside the physical root: confined, `O_NONBLOCK`, regular,
/// at most `cap` bytes.
pub fn read_in_root(root: impl AsFd, rel: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let fd = open_in_root(root, rel, READ_FLAGS)?;
    read_fd(fd, &Path::new("/").join(rel), cap)
}

/// Check that `rel` is a real directory below `root`, reached without any
/// symlink: every component is `lstat`ed, and a symlink is an error
/// (`ELOOP`), whatever it points to. Used for what rootstock mounts or
/// changes (a deployment's `usr`, `etc`, `var`, `sysroot`, the stateroot's
/// `var`, the marker directory), which a symlink must never redirect.
pub fn real_dir(root: &Path, rel: &Path) -> Result<(), Errno> {
    let mut at = PathBuf::new();
    for comp in rel.components() {
        match comp {
            std::path::Component::Normal(c) => at.push(c),
            std::path::Component::RootDir | std::path::Component::CurDir => continue,
            _ => return Err(Errno::XDEV),
        }
        let st = rustix::fs::statat(rustix::fs::CWD, root.join(&at), AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {}
            FileType::Symlink => return Err(Errno::LOOP),
            _ => return Err(Errno::NOTDIR),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let t = crate::testutil::TempDir::new();
        let fifo = t.path().join("fifo");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let err = read_file(&fifo, 10).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "FIFO", .. }), "{err}");
        assert!(err.to_string().contains("not a regular file (a FIFO)"), "{err}");
        let root = open_root(t.path()).unwrap();
        let err = read_in_root(&root, Path::new("fifo"), 10).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { .. }), "{err}");
    }

    #[test]
    fn a_device_is_never_read_and_a_large_file_is_capped() {
        let err = read_file(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let t = crate::testutil::TempDir::new();
        std::fs::write(t.path().join("big"), vec![b'x'; 100]).unwrap();
        let err = read_file(&t.path().join("big"), 10).unwrap_err();
        assert_eq!(err, ReadError::TooLarge { path: t.path().join("big"), cap: 10 });
        assert!(err.to_string().contains("10-byte limit"), "{err}");
        assert_eq!(err.errno(), Errno::FBIG);
        assert_eq!(read_file(&t.path().join("big"), 100).unwrap().len(), 100);
    }

    #[test]
    fn links_out_of_the_root_are_looked_up_inside_it() {
        let t = crate::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/hosts"), "inside").unwrap();
        symlink("/etc/hosts", t.path().join("abs")).unwrap();
        symlink("/dev/zero", t.path().join("zero")).unwrap();
        symlink("../../../../../../etc/passwd", t.path().join("up")).unwrap();
        let root = open_root(t.path()).unwrap();
        assert_eq!(read_in_root(&root, Path::new("abs"), 100).unwrap(), b"inside");
        assert!(read_in_root(&root, Path::new("zero"), 100).unwrap_err().is_not_found());
        // openat2 clamps `..` at the root; the walk refuses it: never the host's file.
        let up = read_in_root(&root, Path::new("up"), 1 << 20);
        assert!(up.is_err(), "{up:?}");
    }

    #[test]
    fn real_dir_refuses_symlinks_anywhere_on_the_way() {
        let t = crate::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::write(t.path().join("a/f"), "").unwrap();
        symlink("a", t.path().join("l")).unwrap();
        symlink("b", t.path().join("a/lb")).unwrap();
        assert_eq!(real_dir(t.path(), Path::new("a/b")), Ok(()));
        assert_eq!(real_dir(t.path(), Path::new("l/b")), Err(Errno::LOOP));
        assert_eq!(real_dir(t.path(), Path::new("a/lb")), Err(Errno::LOOP));
        assert_eq!(real_dir(t.path(), Path::new("a/f")), Err(Errno::NOTDIR));
        assert_eq!(real_dir(t.path(), Path::new("a/x")), Err(Errno::NOENT));
        assert_eq!(real_dir(t.path(), Path::new("../a")), Err(Errno::XDEV));
    }
}
