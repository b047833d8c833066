//! `mkinitramfs`'s output: written with the one atomic write
//! (`rootstock_sys::write_atomic`: a temporary file created
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, fsync, rename over the output, fsync of the
//! directory, the temporary removed on every error), under the lock of the
//! directory it is written in, so two runs writing there go one after the
//! other.

use std::path::{Path, PathBuf};

use rootstock_core::errno::Errno;
use rootstock_core::lock;
use rootstock_core::seam::System;

/// A failed write: the path and the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailed {
    pub path: PathBuf,
    pub errno: Errno,
}

/// Write `bytes` to `path`, replacing it atomically. The directory is the
/// one the user named: its real path is taken first (a symlink the user
/// chose, such as `/boot -> /efi`, is followed once, here), and from there
/// on nothing is followed.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteFailed> {
    let failed = |p: &Path, errno| WriteFailed { path: p.to_path_buf(), errno };
    let name = match path.file_name() {
        Some(n) if n != "." && n != ".." => n,
        _ => return Err(failed(path, Errno::ISDIR)),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir: PathBuf = std::fs::canonicalize(dir).map_err(|e| failed(dir, Errno::from_io(&e)))?;
    let out = dir.join(name);
    let sys = &mut rootstock_sys::Linux;
    lock::acquire(sys, &dir).map_err(|e| {
        log::error!("{e}");
        failed(
            &out,
            match e {
                lock::LockError::Held { .. } => Errno::AGAIN,
                lock::LockError::Failed { errno, .. } => errno,
            },
        )
    })?;
    let r = rootstock_sys::write_atomic(&out, bytes, true).map_err(|errno| failed(&out, errno));
    lock::release(sys as &mut dyn System, &dir);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_replaces_the_file_and_leaves_nothing_else() {
        let t = rootstock_core::testutil::TempDir::new();
        let out = t.path().join("initramfs.img");
        write(&out, b"one").unwrap();
        write(&out, b"two").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["initramfs.img"]);
        let err = write(&t.path().join("no/such/dir/x.img"), b"").unwrap_err();
        assert_eq!(err.errno, Errno::NOENT, "{err:?}");
        assert!(matches!(write(&t.path().join(".."), b""), Err(WriteFailed { errno: Errno::ISDIR, .. })));
        // A directory the user names through a symlink is theirs to choose.
        std::os::unix::fs::symlink(t.path(), t.path().join("link")).unwrap();
        write(&t.path().join("link/initramfs.img"), b"three").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"three");
    }
}
