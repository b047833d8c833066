//! One writer at a time: every command that writes state takes an
//! exclusive lock ([`Op::Lock`], `flock`) with a bounded wait first.
//!
//! - The marker directory's changes (boot counting at boot and in
//!   `prepare-soft-reboot`, `bless`): the physical root's `ostree/`
//!   directory, [`markers`]. It exists before the first marker (the marker
//!   directory is made by the first change), on a read-only root too, in
//!   the initramfs as on the running system; `ostree` itself locks the file
//!   `ostree/lock`, never the directory, so neither waits for the other.
//! - The soft reboot's layout and its state in the run directory
//!   (`prepare-soft-reboot`, `--reset`): the run directory itself.
//! - `mkinitramfs`'s output: the directory it is written in.
//!
//! Locks are taken in that order (run directory, then markers), never the
//! other way, so no two commands wait for each other. Who holds a lock is
//! looked up in `/proc/locks` for the message: nothing is written to say
//! so, and nothing stale can name a process that is gone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::errno::Errno;
use crate::seam::{Op, System};

/// How long a command waits for another to finish: far longer than any
/// of them writes (a soft reboot's layout, a marker, an initramfs).
pub const WAIT: Duration = Duration::from_secs(30);

/// The lock on the marker directory of the physical root at `root`.
pub fn markers(root: &Path) -> PathBuf {
    root.join("ostree")
}

/// The lock could not be taken: nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockError {
    #[error(
        "{} is locked by {holder} and stayed so for {} s: another rootstock command is writing; \
         nothing was changed, try again once it is done",
        path.display(), wait.as_secs()
    )]
    Held { path: PathBuf, holder: Holder, wait: Duration },
    #[error("cannot lock {}: {errno}: nothing was changed", path.display())]
    Failed { path: PathBuf, errno: Errno },
}

/// Who holds a lock, as far as `/proc/locks` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    /// Its `/proc/PID/comm`.
    pub name: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.pid, &self.name) {
            (Some(pid), Some(name)) => write!(f, "PID {pid} ({})", crate::text::one_line(name)),
            (Some(pid), None) => write!(f, "PID {pid}"),
            _ => f.write_str("another process"),
        }
    }
}

/// Take the lock on `path`, waiting at most [`WAIT`].
pub fn acquire(sys: &mut dyn System, path: &Path) -> Result<(), LockError> {
    acquire_within(sys, path, WAIT)
}

/// Take the lock on `path`, waiting at most `wait`.
pub fn acquire_within(sys: &mut dyn System, path: &Path, wait: Duration) -> Result<(), LockError> {
    match sys.execute(&Op::Lock { path: path.to_path_buf(), wait }) {
        Ok(()) => Ok(()),
        Err(Errno::AGAIN) => {
            let holder = holder(path, Path::new("/proc"));
            Err(LockError::Held { path: path.to_path_buf(), holder, wait })
        }
        Err(errno) => Err(LockError::Failed { path: path.to_path_buf(), errno }),
    }
}

/// Let go of the lock on `path` (best effort: it goes with the process).
pub fn release(sys: &mut dyn System, path: &Path) {
    if let Err(e) = sys.execute(&Op::Unlock { path: path.to_path_buf() }) {
        log::debug!("unlock {}: {e}", path.display());
    }
}

/// Run `f` holding the lock on `path`; the lock is let go of afterwards,
/// whatever `f` returns.
pub fn with<T, E: From<LockError>>(
    sys: &mut dyn System,
    path: &Path,
    f: impl FnOnce(&mut dyn System) -> Result<T, E>,
) -> Result<T, E> {
    acquire(sys, path)?;
    let r = f(sys);
    release(sys, path);
    r
}

/// At boot (prepare-root, PID 1): run `f` holding the markers' lock of the
/// physical root at `root`. Booting beats not booting: a lock that cannot
/// be taken is logged, and `f` runs anyway.
pub fn at_boot<T>(sys: &mut dyn System, root: &Path, f: impl FnOnce(&mut dyn System) -> T) -> T {
    let path = markers(root);
    let locked = match acquire(sys, &path) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("{e}: boot counting goes on without the lock");
            false
        }
    };
    let r = f(sys);
    if locked {
        release(sys, &path);
    }
    r
}

/// The process holding an `flock` on `path`, from `proc`'s `locks` (lines
/// `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF`: the PID, then the
/// device in hex and the inode).
pub fn holder(path: &Path, proc: &Path) -> Holder {
    use std::os::unix::fs::MetadataExt;
    let unknown = Holder { pid: None, name: None };
    let Ok(meta) = std::fs::symlink_metadata(path) else { return unknown };
    let Ok(locks) = std::fs::read_to_string(proc.join("locks")) else { return unknown };
    let want =
        (u64::from(rustix::fs::major(meta.dev())), u64::from(rustix::fs::minor(meta.dev())), meta.ino());
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A waiter's line has "->" after the number; LOCK_NB leaves none.
        if fields.get(1) != Some(&"FLOCK") || fields.get(2) == Some(&"->") {
            return None;
        }
        let pid: u32 = fields.get(4)?.parse().ok()?;
        let mut dev = fields.get(5)?.split(':');
        let major = u64::from_str_radix(dev.next()?, 16).ok()?;
        let minor = u64::from_str_radix(dev.next()?, 16).ok()?;
        let ino: u64 = dev.next()?.parse().ok()?;
        ((major, minor, ino) == want).then_some(pid)
    });
    let name = pid.and_then(|pid| std::fs::read_to_string(proc.join(format!("{pid}/comm"))).ok());
    Holder { pid, name: name.map(|n| n.trim_end().to_string()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::fake::{Call, Recorder};
    use crate::testutil::TempDir;

    #[test]
    fn a_held_lock_names_its_holder_and_says_nothing_changed() {
        use std::os::unix::fs::MetadataExt;
        let t = TempDir::new();
        let dir = t.path().join("ostree");
        std::fs::create_dir_all(&dir).unwrap();
        let proc = t.path().join("proc");
        std::fs::create_dir_all(proc.join("4242")).unwrap();
        let m = std::fs::metadata(&dir).unwrap();
        let dev = format!("{:02x}:{:02x}", rustix::fs::major(m.dev()), rustix::fs::minor(m.dev()));
        std::fs::write(
            proc.join("locks"),
            format!(
                "1: POSIX  ADVISORY  WRITE 1 {dev}:{ino} 0 EOF\n\
                 2: FLOCK  ADVISORY  WRITE 4242 {dev}:{ino} 0 EOF\n",
                ino = m.ino()
            ),
        )
        .unwrap();
        std::fs::write(proc.join("4242/comm"), "rootstock\n").unwrap();
        let h = holder(&dir, &proc);
        assert_eq!(h, Holder { pid: Some(4242), name: Some("rootstock".into()) });
        let e = LockError::Held { path: dir.clone(), holder: h, wait: WAIT }.to_string();
        assert!(e.contains("locked by PID 4242 (rootstock)") && e.contains("nothing was changed"), "{e}");
        assert_eq!(holder(&t.path().join("gone"), &proc), Holder { pid: None, name: None });
    }

    #[test]
    fn a_lock_not_taken_in_time_is_an_error_and_the_lock_is_shown_in_the_plan() {
        let p = Path::new("/sysroot/ostree");
        let mut r = Recorder::failing_on(|c| matches!(c, Call::Op(Op::Lock { .. })), Errno::AGAIN);
        let e = with(&mut r, p, |_| Ok::<_, LockError>(())).unwrap_err();
        assert!(matches!(e, LockError::Held { .. }), "{e}");
        assert_eq!(r.lines(), ["lock   - -> /sysroot/ostree [LOCK_EX, wait 30 s]"], "nothing else done");
        let mut r = Recorder::new();
        with(&mut r, p, |sys| {
            sys.execute(&Op::Sync).map_err(|_| LockError::Held {
                path: p.into(),
                holder: Holder { pid: None, name: None },
                wait: WAIT,
            })
        })
        .unwrap();
        assert_eq!(
            r.lines(),
            [
                "lock   - -> /sysroot/ostree [LOCK_EX, wait 30 s]",
                "sync   - -> - [every filesystem]",
                "unlock - -> /sysroot/ostree [LOCK_UN]"
            ]
        );
    }
}
