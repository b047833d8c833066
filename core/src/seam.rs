//! The seam: every side effect rootstock has goes through [`System`], so
//! the decisions above it run unchanged against the kernel
//! (`rootstock_sys::Linux`), against a [`fake::Recorder`] in tests and in
//! `--dry-run`, and with failures injected at any step.
//!
//! A side effect is an [`Op`]: a named operation on paths, executed by
//! [`System::execute`]. What the decisions need to know about the running
//! system (is a mount read-only, is `/` the initramfs) is a [`Query`],
//! answered by [`System::query`]. Reading files is not a side effect and
//! does not go through here: every path read is a parameter, so tests point
//! it at files they made.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use rustix::mount::MountFlags;

use crate::errno::Errno;

/// Executes operations and answers queries. Implemented by
/// `rootstock_sys::Linux` and by [`fake::Recorder`].
pub trait System {
    /// Perform one side effect. [`Op::Exec`] and [`Op::Reboot`] do not
    /// return when the kernel carries them out; a recorder returns `Ok`.
    fn execute(&mut self, op: &Op) -> Result<(), Errno>;
    /// Ask the system a question whose answer is yes or no.
    fn query(&mut self, q: &Query) -> Result<bool, Errno>;
}

/// The time, and waiting for it to pass (PID 1's wait for its root
/// device). Apart from [`System`]: a wait changes nothing, so it is neither
/// recorded nor failed. `rootstock_sys::Linux` reads the monotonic clock
/// and sleeps; [`fake::FakeClock`] only moves when asked to sleep, so tests
/// never really wait.
pub trait Clock {
    /// Now, on a clock that never goes back.
    fn now(&self) -> Instant;
    /// Let `d` pass.
    fn sleep(&self, d: Duration);
}

/// One side effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    // Mounts.
    /// `mount(source, target, fstype, flags, data)`: a filesystem.
    Mount { source: PathBuf, target: PathBuf, fstype: String, flags: MountFlags, data: String },
    /// `mount(NULL, target, NULL, MS_REC|MS_PRIVATE)`
    MakeRprivate { target: PathBuf },
    /// `mount(source, target, NULL, MS_BIND)`
    Bind { source: PathBuf, target: PathBuf },
    /// `mount(NULL, target, NULL, MS_REMOUNT [|MS_BIND] [|MS_RDONLY])`: with
    /// `bind`, the flags of this mount only; without, of the filesystem
    /// (and this mount).
    Remount { target: PathBuf, bind: bool, read_only: bool },
    /// `mount("overlay", target, "overlay", 0, "lowerdir=..,upperdir=..,workdir=..")`
    Overlay { target: PathBuf, lower: PathBuf, upper: PathBuf, work: PathBuf },
    /// Mount the EROFS image at `image` read-only at `target`, as composefs
    /// does: the file is opened without following a symlink and must be a
    /// regular file (`EINVAL`); its fs-verity is checked on that open file
    /// as `verity` asks (see [`ImageVerity`]); then the kernel mounts that
    /// same file (file-backed EROFS, Linux ≥ 6.12; `ENOTBLK` before).
    MountImage { image: PathBuf, target: PathBuf, verity: ImageVerity },
    /// The composefs root: overlayfs with the image mounted at `metadata` as
    /// its lower layer and the repository's `objects` as a data-only layer
    /// below it (Linux ≥ 6.5; `verity=require` ≥ 6.6), options as
    /// [`composefs_overlay_options`] writes them; read-only without `upper`
    /// (its upper and work directories), and with `read_only`.
    ComposefsOverlay {
        target: PathBuf,
        metadata: PathBuf,
        objects: PathBuf,
        verity: bool,
        upper: Option<(PathBuf, PathBuf)>,
        read_only: bool,
    },
    /// `mount(source, target, NULL, MS_MOVE)`
    Move { source: PathBuf, target: PathBuf },
    /// `umount2(target, MNT_DETACH)`: the mount and everything below it.
    Detach { target: PathBuf },
    /// [`Op::Detach`] of the mount at `target` only when it is the mount
    /// with ID `mount_id` (`statx`'s `STATX_MNT_ID`, mountinfo's first
    /// field; `ESTALE` otherwise): a mount this program recorded as its own.
    DetachMount { target: PathBuf, mount_id: u64 },

    // Files.
    /// `mkdir -p`, mode 0755, one component at a time, never through a
    /// symlink (`ELOOP`).
    Mkdir { path: PathBuf },
    /// Write a file atomically: a temporary file in the same directory
    /// (`O_CREAT|O_EXCL|O_NOFOLLOW`), fsync, rename over `path`, fsync of
    /// the directory. The directory must exist and is reached without a
    /// symlink anywhere on the way (`ELOOP`); the temporary file is removed
    /// on every error.
    WriteFile { path: PathBuf, contents: Contents },
    /// A symlink at `path` to `target`, replacing what is there: made under
    /// a temporary name in the same directory (reached without a symlink,
    /// `ELOOP`), then renamed over `path`.
    Symlink { path: PathBuf, target: PathBuf },
    /// Write to a file the kernel provides (procfs, sysfs): opened without
    /// creating or truncating, one write.
    WriteKnob { path: PathBuf, contents: String },
    /// `openat(dir, name, O_CREAT|O_EXCL, 0644)`: an empty file that must not
    /// exist yet.
    CreateExclusive { dir: PathBuf, name: String },
    /// `renameat2(dir, from, dir, to, RENAME_NOREPLACE)`
    RenameNoReplace { dir: PathBuf, from: String, to: String },
    /// `unlinkat(dir, name, 0)`
    Unlink { dir: PathBuf, name: String },
    /// `unlinkat(dir, name, AT_REMOVEDIR)`
    RemoveDir { dir: PathBuf, name: String },
    /// `fsync` of a directory: the names in it are on disk.
    FsyncDir { path: PathBuf },
    /// `syncfs` of the filesystem holding `path`.
    SyncFs { path: PathBuf },
    /// `sync()`: every filesystem.
    Sync,
    /// `flock(LOCK_EX)` on the directory or file at `path` (opened without
    /// following a symlink), waiting at most `wait` (`EAGAIN` then): one
    /// writer at a time. Held until [`Op::Unlock`] or the process ends;
    /// taking a lock this process holds already succeeds at once.
    Lock { path: PathBuf, wait: Duration },
    /// Let go of the lock [`Op::Lock`] took on `path`.
    Unlock { path: PathBuf },
    /// Delete everything below `root` (not `root` itself) as systemd's
    /// switch-root frees the initramfs: through file descriptors
    /// (`openat`/`unlinkat` with `O_NOFOLLOW|O_DIRECTORY`, never a path),
    /// only when the directory opened at `root` is the one on device `dev`
    /// with inode `ino` (`ESTALE` otherwise) and is on a ramfs or tmpfs
    /// (`EPERM` otherwise), never following a symlink and never into
    /// another mount (another device, or a mount point of the same one).
    EmptyRamfs { root: PathBuf, dev: u64, ino: u64 },

    // The process.
    /// `chdir(path)`
    Chdir { path: PathBuf },
    /// `chroot(path)`
    Chroot { path: PathBuf },
    /// Open `path` (the console) read-write as stdin, stdout and stderr.
    Console { path: PathBuf },
    /// `execv(path, [path, args...])`: becomes `path`; returns only on failure.
    Exec { path: PathBuf, args: Vec<OsString> },
    /// PID 1's emergency shell: run `path` as an interactive login shell on
    /// the console and wait for it to end, which is logged with its exit
    /// status (`emergency shell ended (exit status: 3): rebooting`: PID 1
    /// reboots then).
    EmergencyShell { path: PathBuf },

    // The kernel.
    /// `finit_module` of the file at `path`; `compressed`: the kernel
    /// decompresses it (`MODULE_INIT_COMPRESSED_FILE`).
    LoadModule { path: PathBuf, compressed: bool },
    /// `kexec_file_load`: load a kernel for a later [`Reboot::Kexec`].
    KexecLoad(KexecImage),
    /// `reboot(cmd)`; returns only on failure.
    Reboot(Reboot),
}

/// The bytes of a file [`Op::WriteFile`] writes; text, or binary such as
/// /run/ostree-booted's GVariant. Shown as an escaped string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Contents(pub Vec<u8>);

impl Contents {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The contents as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl From<String> for Contents {
    fn from(s: String) -> Contents {
        Contents(s.into_bytes())
    }
}

impl From<&str> for Contents {
    fn from(s: &str) -> Contents {
        Contents(s.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Contents {
    fn from(v: Vec<u8>) -> Contents {
        Contents(v)
    }
}

/// What `reboot(2)` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    Restart,
    PowerOff,
    Halt,
    /// Boot the kernel loaded by [`Op::KexecLoad`].
    Kexec,
}

/// A question about the running system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Is the mount at `path` read-only (`statvfs`'s `ST_RDONLY`: the mount,
    /// or its filesystem)?
    ReadOnly { path: PathBuf },
    /// Is the filesystem at `path` a ramfs or a tmpfs (`statfs`'s `f_type`):
    /// the initramfs's rootfs?
    RamFs { path: PathBuf },
}

/// What [`Op::MountImage`] requires of the image's fs-verity, checked on
/// the file it mounts (`FS_IOC_MEASURE_VERITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageVerity {
    /// Nothing (`composefs.enabled = yes`, `maybe`).
    Unchecked,
    /// fs-verity is on (`verity`): `ENODATA` when it is off, or what the
    /// filesystem says when it has none (`EOPNOTSUPP`, `ENOTTY`).
    Required,
    /// fs-verity is on with this SHA-256 digest (`signed`: the digest the
    /// signed commit names): `EBADMSG` for another one.
    Digest([u8; 32]),
}

impl fmt::Display for ImageVerity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageVerity::Unchecked => f.write_str("fs-verity not checked"),
            ImageVerity::Required => f.write_str("fs-verity required"),
            ImageVerity::Digest(d) => {
                f.write_str("fs-verity sha256:")?;
                d.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// The overlayfs options of [`Op::ComposefsOverlay`]: the image's tree over
/// the objects (`::`: a data-only layer, reached only through the image's
/// redirects), `metacopy` and `redirect_dir` (the image's files are
/// metadata that redirect to their object), `verity=require` (every
/// object's fs-verity digest must be the one the image records).
pub fn composefs_overlay_options(
    metadata: &Path,
    objects: &Path,
    verity: bool,
    upper: Option<(&Path, &Path)>,
) -> String {
    let mut o = format!("lowerdir={}::{},metacopy=on,redirect_dir=on", metadata.display(), objects.display());
    if verity {
        o.push_str(",verity=require");
    }
    if let Some((upper, work)) = upper {
        o.push_str(&format!(",upperdir={},workdir={}", upper.display(), work.display()));
    }
    o
}

/// A kernel, its initramfs and its command line, to kexec into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexecImage {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    /// The first pass's boot state, for the second pass: appended to the
    /// initramfs as `/rootstock-kexec-state` (see state::KEXEC_STATE).
    pub carry: Option<String>,
}

impl Op {
    /// The path an error at this step is about.
    pub fn target(&self) -> &Path {
        match self {
            Op::Mount { target, .. }
            | Op::MakeRprivate { target }
            | Op::Bind { target, .. }
            | Op::Remount { target, .. }
            | Op::Overlay { target, .. }
            | Op::MountImage { target, .. }
            | Op::ComposefsOverlay { target, .. }
            | Op::Move { target, .. }
            | Op::Detach { target }
            | Op::DetachMount { target, .. } => target,
            Op::Mkdir { path }
            | Op::WriteFile { path, .. }
            | Op::WriteKnob { path, .. }
            | Op::Symlink { path, .. }
            | Op::FsyncDir { path }
            | Op::SyncFs { path }
            | Op::Lock { path, .. }
            | Op::Unlock { path }
            | Op::Chdir { path }
            | Op::Chroot { path }
            | Op::Console { path }
            | Op::Exec { path, .. }
            | Op::EmergencyShell { path }
            | Op::LoadModule { path, .. } => path,
            Op::EmptyRamfs { root, .. } => root,
            Op::CreateExclusive { dir, .. }
            | Op::RenameNoReplace { dir, .. }
            | Op::Unlink { dir, .. }
            | Op::RemoveDir { dir, .. } => dir,
            Op::KexecLoad(k) => &k.kernel,
            Op::Sync | Op::Reboot(_) => Path::new("/"),
        }
    }
}

/// `MS_NOSUID|MS_RDONLY`, in the order mount(8) lists them.
fn flag_names(flags: MountFlags) -> String {
    let names = [
        (MountFlags::RDONLY, "MS_RDONLY"),
        (MountFlags::NOSUID, "MS_NOSUID"),
        (MountFlags::NODEV, "MS_NODEV"),
        (MountFlags::NOEXEC, "MS_NOEXEC"),
        (MountFlags::SYNCHRONOUS, "MS_SYNCHRONOUS"),
        (MountFlags::NOATIME, "MS_NOATIME"),
        (MountFlags::NODIRATIME, "MS_NODIRATIME"),
        (MountFlags::RELATIME, "MS_RELATIME"),
        (MountFlags::STRICTATIME, "MS_STRICTATIME"),
        (MountFlags::LAZYTIME, "MS_LAZYTIME"),
        (MountFlags::DIRSYNC, "MS_DIRSYNC"),
        (MountFlags::SILENT, "MS_SILENT"),
    ];
    let mut out: Vec<String> =
        names.iter().filter(|(f, _)| flags.contains(*f)).map(|(_, n)| n.to_string()).collect();
    let known = names.iter().fold(MountFlags::empty(), |acc, (f, _)| acc | *f);
    let rest = flags.bits() & !known.bits();
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    out.join("|")
}

/// One operation per line, as `--dry-run` and the tests show it:
/// `VERB   SOURCE -> TARGET [FLAGS]`.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |p: &Path| p.display().to_string();
        let at = |dir: &Path, name: &str| dir.join(name).display().to_string();
        let none = || "-".to_string();
        let (verb, source, target, flags) = match self {
            Op::Mount { source, target, fstype, flags, data } => {
                let mut how = fstype.clone();
                for extra in [flag_names(*flags), data.clone()] {
                    if !extra.is_empty() {
                        how.push(' ');
                        how.push_str(&extra);
                    }
                }
                ("mount", p(source), p(target), how)
            }
            Op::MakeRprivate { target } => ("mount", "none".into(), p(target), "MS_REC|MS_PRIVATE".into()),
            Op::Bind { source, target } => ("mount", p(source), p(target), "MS_BIND".into()),
            Op::Remount { target, bind, read_only } => {
                let mut flags = "MS_REMOUNT".to_string();
                if *bind {
                    flags.push_str("|MS_BIND");
                }
                if *read_only {
                    flags.push_str("|MS_RDONLY");
                }
                ("mount", "none".into(), p(target), flags)
            }
            Op::Overlay { target, lower, upper, work } => (
                "mount",
                "overlay".into(),
                p(target),
                format!("overlay lowerdir={},upperdir={},workdir={}", p(lower), p(upper), p(work)),
            ),
            Op::MountImage { image, target, verity } => {
                ("mount", p(image), p(target), format!("erofs MS_RDONLY, {verity}"))
            }
            Op::ComposefsOverlay { target, metadata, objects, verity, upper, read_only } => {
                let upper = upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
                let options = composefs_overlay_options(metadata, objects, *verity, upper);
                let flags = if *read_only { "MS_RDONLY " } else { "" };
                ("mount", "overlay".into(), p(target), format!("overlay {flags}{options}"))
            }
            Op::Move { source, target } => ("mount", p(source), p(target), "MS_MOVE".into()),
            Op::Detach { target } => ("umount", none(), p(target), "MNT_DETACH".into()),
            Op::DetachMount { target, mount_id } => {
                ("umount", none(), p(target), format!("MNT_DETACH mount ID {mount_id}"))
            }
            Op::Mkdir { path } => ("mkdir", none(), p(path), "0755".into()),
            Op::WriteFile { path, contents } => {
                ("write", format!("{} bytes", contents.len()), p(path), "atomic".into())
            }
            Op::WriteKnob { path, contents } => {
                ("write", format!("{contents:?}"), p(path), "in place".into())
            }
            Op::Symlink { path, target } => ("symlink", p(target), p(path), "replace".into()),
            Op::CreateExclusive { dir, name } => ("create", none(), at(dir, name), "O_EXCL 0644".into()),
            Op::RenameNoReplace { dir, from, to } => {
                ("rename", at(dir, from), at(dir, to), "RENAME_NOREPLACE".into())
            }
            Op::Unlink { dir, name } => ("unlink", none(), at(dir, name), "file".into()),
            Op::RemoveDir { dir, name } => ("unlink", none(), at(dir, name), "AT_REMOVEDIR".into()),
            Op::FsyncDir { path } => ("fsync", none(), p(path), "directory".into()),
            Op::SyncFs { path } => ("syncfs", none(), p(path), "filesystem".into()),
            Op::Sync => ("sync", none(), none(), "every filesystem".into()),
            Op::Lock { path, wait } => {
                ("lock", none(), p(path), format!("LOCK_EX, wait {} s", wait.as_secs_f64()))
            }
            Op::Unlock { path } => ("unlock", none(), p(path), "LOCK_UN".into()),
            Op::EmptyRamfs { root, .. } => ("empty", none(), p(root), "this ramfs or tmpfs only".into()),
            Op::Chdir { path } => ("chdir", none(), p(path), "cwd".into()),
            Op::Chroot { path } => ("chroot", none(), p(path), "root".into()),
            Op::Console { path } => ("open", p(path), "stdin stdout stderr".into(), "O_RDWR".into()),
            Op::Exec { path, args } => {
                let args: Vec<String> = args.iter().map(|a| format!("{:?}", a.to_string_lossy())).collect();
                ("exec", none(), p(path), format!("args {}", args.join(" ")).trim_end().to_string())
            }
            Op::EmergencyShell { path } => ("spawn", none(), p(path), "-sh".into()),
            Op::LoadModule { path, compressed } => (
                "insmod",
                none(),
                p(path),
                if *compressed { "MODULE_INIT_COMPRESSED_FILE" } else { "0" }.into(),
            ),
            Op::KexecLoad(k) => (
                "kexec",
                p(&k.kernel),
                k.initrd.as_deref().map(p).unwrap_or_else(none),
                format!("cmdline {:?}", k.cmdline),
            ),
            Op::Reboot(how) => {
                let cmd = match how {
                    Reboot::Restart => "RESTART",
                    Reboot::PowerOff => "POWER_OFF",
                    Reboot::Halt => "HALT",
                    Reboot::Kexec => "KEXEC",
                };
                ("reboot", none(), none(), format!("LINUX_REBOOT_CMD_{cmd}"))
            }
        };
        write!(f, "{verb:<6} {source} -> {target} [{flags}]")
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::ReadOnly { path } => write!(f, "query  read-only? {}", path.display()),
            Query::RamFs { path } => write!(f, "query  ramfs or tmpfs? {}", path.display()),
        }
    }
}

pub mod fake {
    //! A recording [`System`] that can fail a chosen call: the `--dry-run`
    //! executor and the tests' fake kernel.
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// One call the recorder saw.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Call {
        Op(Op),
        Query(Query),
    }

    impl fmt::Display for Call {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Call::Op(op) => op.fmt(f),
                Call::Query(q) => q.fmt(f),
            }
        }
    }

    /// Which call to fail.
    pub enum Trigger {
        /// The n-th call (1-based, operations and queries counted alike).
        Nth(usize),
        /// The first call the predicate picks.
        First(Box<dyn Fn(&Call) -> bool>),
    }

    /// A mount the recorder pretends is read-only, and at which level.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct ReadOnly {
        mount: bool,
        filesystem: bool,
    }

    /// Records every call in order and carries none out. Queries are
    /// answered from what the test (or `--dry-run`) set up, and the
    /// remounts recorded so far: a mount is read-only when it or its
    /// filesystem is, as `statvfs` says, and a write below a read-only
    /// mount fails with EROFS, as the kernel's would.
    #[derive(Default)]
    pub struct Recorder {
        /// Every call, in order, the failed one included.
        pub calls: Vec<Call>,
        fail: Option<(Trigger, Errno)>,
        failed: bool,
        read_only: BTreeMap<PathBuf, ReadOnly>,
        ram: BTreeSet<PathBuf>,
    }

    impl Recorder {
        pub fn new() -> Recorder {
            Recorder::default()
        }

        /// Fail the n-th call (1-based) with `errno`.
        pub fn failing_at(n: usize, errno: Errno) -> Recorder {
            Recorder { fail: Some((Trigger::Nth(n), errno)), ..Recorder::default() }
        }

        /// Fail the first call `pick` chooses with `errno`.
        pub fn failing_on(pick: impl Fn(&Call) -> bool + 'static, errno: Errno) -> Recorder {
            Recorder { fail: Some((Trigger::First(Box::new(pick)), errno)), ..Recorder::default() }
        }

        /// Pretend the mount at `path` is read-only: only this mount (a
        /// read-only bind), or its whole filesystem.
        pub fn with_read_only(mut self, path: &Path, whole_filesystem: bool) -> Recorder {
            self.read_only.insert(path.to_path_buf(), ReadOnly { mount: true, filesystem: whole_filesystem });
            self
        }

        /// Pretend the filesystem at `path` is a ramfs (the initramfs).
        pub fn with_ram_fs(mut self, path: &Path) -> Recorder {
            self.ram.insert(path.to_path_buf());
            self
        }

        /// The operations, in order.
        pub fn operations(&self) -> impl Iterator<Item = &Op> {
            self.calls.iter().filter_map(|c| match c {
                Call::Op(op) => Some(op),
                Call::Query(_) => None,
            })
        }

        /// The images loaded with [`Op::KexecLoad`], in order.
        pub fn kexec_images(&self) -> Vec<KexecImage> {
            self.operations()
                .filter_map(|op| match op {
                    Op::KexecLoad(k) => Some(k.clone()),
                    _ => None,
                })
                .collect()
        }

        /// Is `path` on a mount the recorder takes as read-only: the
        /// closest mount point at or above it?
        fn read_only_at(&self, path: &Path) -> bool {
            let closest = self
                .read_only
                .iter()
                .filter(|(p, _)| path.starts_with(p))
                .max_by_key(|(p, _)| p.as_os_str().len());
            closest.is_some_and(|(_, s)| s.mount || s.filesystem)
        }

        /// Every call, one line each, as [`Call`]'s `Display` shows it.
        pub fn lines(&self) -> Vec<String> {
            self.calls.iter().map(Call::to_string).collect()
        }

        /// Record `call`; the errno when it is the one to fail.
        fn record(&mut self, call: Call) -> Result<(), Errno> {
            self.calls.push(call);
            let Some((trigger, errno)) = &self.fail else { return Ok(()) };
            if self.failed {
                return Ok(());
            }
            let hit = match trigger {
                Trigger::Nth(n) => *n == self.calls.len(),
                Trigger::First(pick) => self.calls.last().is_some_and(pick),
            };
            if hit {
                self.failed = true;
                return Err(*errno);
            }
            Ok(())
        }
    }

    /// Does `op` change the filesystem at its target (and so fail with
    /// EROFS on a read-only mount)?
    fn writes(op: &Op) -> bool {
        matches!(
            op,
            Op::Mkdir { .. }
                | Op::WriteFile { .. }
                | Op::CreateExclusive { .. }
                | Op::RenameNoReplace { .. }
                | Op::Unlink { .. }
                | Op::RemoveDir { .. }
        )
    }

    impl System for Recorder {
        fn execute(&mut self, op: &Op) -> Result<(), Errno> {
            self.record(Call::Op(op.clone()))?;
            if writes(op) && self.read_only_at(op.target()) {
                return Err(Errno::ROFS);
            }
            if let Op::Remount { target, bind, read_only } = op {
                let state = self.read_only.entry(target.clone()).or_default();
                state.mount = *read_only;
                // The kernel sets the mount's flags on a filesystem remount too.
                if !bind {
                    state.filesystem = *read_only;
                }
            }
            Ok(())
        }

        fn query(&mut self, q: &Query) -> Result<bool, Errno> {
            self.record(Call::Query(q.clone()))?;
            Ok(match q {
                Query::ReadOnly { path } => self.read_only.get(path).is_some_and(|s| s.mount || s.filesystem),
                Query::RamFs { path } => self.ram.contains(path),
            })
        }
    }

    /// A [`Clock`] that stands still until asked to sleep, and then moves on
    /// at once by the time asked: a wait of thirty seconds takes none.
    pub struct FakeClock {
        start: Instant,
        slept: std::cell::Cell<Duration>,
    }

    impl FakeClock {
        pub fn new() -> FakeClock {
            FakeClock { start: Instant::now(), slept: std::cell::Cell::new(Duration::ZERO) }
        }

        /// How long it was asked to sleep, in all.
        pub fn slept(&self) -> Duration {
            self.slept.get()
        }
    }

    impl Default for FakeClock {
        fn default() -> FakeClock {
            FakeClock::new()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + self.slept.get()
        }

        fn sleep(&self, d: Duration) {
            self.slept.set(self.slept.get() + d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Call, Recorder};
    use super::*;
    #[test]
    fn the_recorder_fails_the_first_call_picked_and_only_that() {
        let mut r = Recorder::failing_on(|c| matches!(c, Call::Op(Op::Mkdir { .. })), Errno::NOSPC);
        assert_eq!(r.execute(&Op::Sync), Ok(()));
        assert_eq!(r.execute(&Op::Mkdir { path: "/a".into() }), Err(Errno::NOSPC));
        assert_eq!(r.execute(&Op::Mkdir { path: "/b".into() }), Ok(()));
        assert_eq!(
            r.lines(),
            ["sync   - -> - [every filesystem]", "mkdir  - -> /a [0755]", "mkdir  - -> /b [0755]"]
        );
    }

    #[test]
    fn the_recorder_follows_remounts() {
        let p = Path::new("/sysroot");
        let q = Query::ReadOnly { path: p.into() };
        let remount = |bind, read_only| Op::Remount { target: p.into(), bind, read_only };
        // A read-only bind of a writable filesystem.
        let mut r = Recorder::new().with_read_only(p, false);
        assert_eq!(r.query(&q), Ok(true));
        r.execute(&remount(true, false)).unwrap();
        assert_eq!(r.query(&q), Ok(false));
        // A read-only filesystem: the bind remount is not enough.
        let mut r = Recorder::new().with_read_only(p, true);
        r.execute(&remount(true, false)).unwrap();
        assert_eq!(r.query(&q), Ok(true));
        r.execute(&remount(false, false)).unwrap();
        assert_eq!(r.query(&q), Ok(false));
        r.execute(&remount(false, true)).unwrap();
        assert_eq!(r.query(&q), Ok(true));
        assert_eq!(Recorder::new().query(&q), Ok(false));
        // Writes below a read-only mount fail; the closest mount decides.
        let mut r = Recorder::new().with_read_only(p, true);
        let create = |dir: &str| Op::CreateExclusive { dir: dir.into(), name: "m".into() };
        assert_eq!(r.execute(&create("/sysroot/ostree/rootstock")), Err(Errno::ROFS));
        assert_eq!(r.execute(&create("/sysroot.tmp")), Ok(()), "a sibling, not below");
        r.execute(&Op::Remount { target: "/sysroot/boot".into(), bind: true, read_only: false }).unwrap();
        assert_eq!(r.execute(&create("/sysroot/boot/loader")), Ok(()));
        assert_eq!(r.execute(&Op::Bind { source: "/a".into(), target: "/sysroot/x".into() }), Ok(()));
        assert_eq!(Recorder::new().query(&Query::RamFs { path: "/".into() }), Ok(false));
        assert_eq!(
            Recorder::new().with_ram_fs(Path::new("/")).query(&Query::RamFs { path: "/".into() }),
            Ok(true)
        );
    }

    #[test]
    fn every_operation_renders_on_one_line() {
        let ops = [
            (
                Op::Mount {
                    source: "devtmpfs".into(),
                    target: "/dev".into(),
                    fstype: "devtmpfs".into(),
                    flags: MountFlags::NOSUID,
                    data: "mode=0755".into(),
                },
                "mount  devtmpfs -> /dev [devtmpfs MS_NOSUID mode=0755]",
            ),
            (
                Op::Mount {
                    source: "/dev/vda2".into(),
                    target: "/sysroot".into(),
                    fstype: "ext4".into(),
                    flags: MountFlags::RDONLY | MountFlags::NOSUID,
                    data: String::new(),
                },
                "mount  /dev/vda2 -> /sysroot [ext4 MS_RDONLY|MS_NOSUID]",
            ),
            (
                Op::Remount { target: "/s".into(), bind: false, read_only: false },
                "mount  none -> /s [MS_REMOUNT]",
            ),
            (Op::Detach { target: "/s".into() }, "umount - -> /s [MNT_DETACH]"),
            (
                Op::DetachMount { target: "/run/nextroot".into(), mount_id: 42 },
                "umount - -> /run/nextroot [MNT_DETACH mount ID 42]",
            ),
            (
                Op::Lock { path: "/run".into(), wait: Duration::from_secs(30) },
                "lock   - -> /run [LOCK_EX, wait 30 s]",
            ),
            (Op::Unlock { path: "/run".into() }, "unlock - -> /run [LOCK_UN]"),
            (
                Op::WriteKnob { path: "/proc/sys/kernel/printk_devkmsg".into(), contents: "on\n".into() },
                r#"write  "on\n" -> /proc/sys/kernel/printk_devkmsg [in place]"#,
            ),
            (
                Op::CreateExclusive { dir: "/m".into(), name: "a+02-01".into() },
                "create - -> /m/a+02-01 [O_EXCL 0644]",
            ),
            (
                Op::RenameNoReplace { dir: "/m".into(), from: "a+02-01".into(), to: "a".into() },
                "rename /m/a+02-01 -> /m/a [RENAME_NOREPLACE]",
            ),
            (Op::Unlink { dir: "/m".into(), name: "b".into() }, "unlink - -> /m/b [file]"),
            (Op::RemoveDir { dir: "/".into(), name: "lib".into() }, "unlink - -> /lib [AT_REMOVEDIR]"),
            (Op::FsyncDir { path: "/m".into() }, "fsync  - -> /m [directory]"),
            (Op::SyncFs { path: "/m".into() }, "syncfs - -> /m [filesystem]"),
            (Op::EmptyRamfs { root: "/".into(), dev: 1, ino: 2 }, "empty  - -> / [this ramfs or tmpfs only]"),
            (Op::Chdir { path: "/".into() }, "chdir  - -> / [cwd]"),
            (Op::Chroot { path: ".".into() }, "chroot - -> . [root]"),
            (
                Op::Console { path: "/dev/console".into() },
                "open   /dev/console -> stdin stdout stderr [O_RDWR]",
            ),
            (
                Op::Exec { path: "/sbin/init".into(), args: vec!["single".into()] },
                r#"exec   - -> /sbin/init [args "single"]"#,
            ),
            (Op::Exec { path: "/sbin/init".into(), args: vec![] }, "exec   - -> /sbin/init [args]"),
            (Op::EmergencyShell { path: "/bin/sh".into() }, "spawn  - -> /bin/sh [-sh]"),
            (
                Op::LoadModule { path: "/lib/modules/k/virtio_blk.ko.xz".into(), compressed: true },
                "insmod - -> /lib/modules/k/virtio_blk.ko.xz [MODULE_INIT_COMPRESSED_FILE]",
            ),
            (
                Op::KexecLoad(KexecImage {
                    kernel: "/boot/vmlinuz".into(),
                    initrd: None,
                    cmdline: "root=/dev/vda2".into(),
                    carry: None,
                }),
                r#"kexec  /boot/vmlinuz -> - [cmdline "root=/dev/vda2"]"#,
            ),
            (Op::Reboot(Reboot::PowerOff), "reboot - -> - [LINUX_REBOOT_CMD_POWER_OFF]"),
        ];
        for (op, line) in ops {
            assert_eq!(op.to_string(), line);
        }
    }
}
