//! `rootstock mkinitramfs --host`: the modules this machine needs to reach
//! its root filesystem, as dracut's `--hostonly` and booster's host mode
//! pick them.
//!
//! 1. The root device: the mount of `/` in `/proc/self/mountinfo` (or of
//!    `/sysroot` when `/` is not on a block device, as with a composefs
//!    root), or `--root-device`.
//! 2. Its sysfs directory (`/sys/dev/block/MAJ:MIN`, a partition's disk
//!    above it), and every directory above that up to `/sys/devices`: the
//!    module of each bound driver (its `driver/module` link). A driver
//!    without that link (mmc's `mmcblk`, for one) is the loaded module
//!    (`/sys/module/NAME`) that the device's `MODALIAS=` matches in the
//!    kernel's `modules.alias`; a driver built into the kernel needs
//!    nothing.
//! 3. The same for each device below a device-mapper or md device
//!    (`slaves/`), with `dm_mod` (`dm_crypt` for a LUKS mapping, `dm_verity`
//!    for a verity one) or `md_mod` and the RAID level's module.
//! 4. The root filesystem's module, by its type (`ext4`, or the `fs-TYPE`
//!    alias).
//!
//! Every pick comes with the reason it was made; `mkinitramfs` prints them.
//! `--sysfs DIR` and `--mountinfo FILE` point it at a captured machine.
//!
//! These inputs are read as the physical root is (DESIGN.md, "Confinement"):
//! every file is opened `O_NONBLOCK`, must be a regular file and is read up
//! to a cap that the error names ([`SYSFS_FILE_CAP`], [`MOUNTINFO_CAP`],
//! [`MODULES_ALIAS_CAP`]). Every path in sysfs (the live `/sys` or a
//! captured tree) is resolved inside it: sysfs's own relative links are
//! followed, but a link that leads out of the tree, or to nothing in it
//! (`/dev/zero` from a captured tree), is an error naming it. A file that is
//! not there means what it always meant (no `dm/uuid`: not a LUKS mapping).
//! The walk down `slaves/` is iterative and stops with an error below
//! [`MAX_STACK_DEPTH`] levels.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rootstock_core::confine::{self, ReadError};
use rootstock_core::errno::Errno;
use rootstock_core::resolve::{MAX_SYMLINKS, ResolveError, resolve_at};
use rustix::fs::{AtFlags, FileType, OFlags};

use crate::modules::{ModError, ModuleTree, Resolved, alias_matches, normalize};

/// The cap on one sysfs file (`uevent`, `dev`, `dm/uuid`, `md/level`): the
/// kernel's own limit for an attribute is one page, 64 KiB on the largest
/// pages.
pub const SYSFS_FILE_CAP: u64 = 64 << 10;
/// The cap on the mount table: 16 MiB, some 100,000 mounts.
pub const MOUNTINFO_CAP: u64 = 16 << 20;
/// The cap on the kernel's `modules.alias` (about 1.4 MB for Debian's), as
/// on the module tree's other index files.
pub const MODULES_ALIAS_CAP: u64 = 64 << 20;
/// How many levels of `slaves/` (a mapping on an array on a partition...)
/// the walk goes below the root device; real stacks are a few deep.
pub const MAX_STACK_DEPTH: usize = 32;

/// Where the machine is read from.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// Normally /sys.
    pub sysfs: PathBuf,
    /// Normally /proc/self/mountinfo.
    pub mountinfo: PathBuf,
    /// `MAJ:MIN`, a `/dev/...` path, or a name in `/sys/class/block`;
    /// None: the root from `mountinfo`.
    pub root_device: Option<String>,
    /// None: from `mountinfo`.
    pub root_fstype: Option<String>,
}

impl Default for HostOptions {
    fn default() -> HostOptions {
        HostOptions {
            sysfs: "/sys".into(),
            mountinfo: "/proc/self/mountinfo".into(),
            root_device: None,
            root_fstype: None,
        }
    }
}

/// A module picked, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub module: String,
    pub why: String,
}

/// What `--host` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostModules {
    /// The root device's sysfs directory.
    pub device: PathBuf,
    pub devno: (u32, u32),
    pub fstype: String,
    /// Where the root was read from (mountinfo, or the command line).
    pub source: String,
    /// In the order found: from the root device up, then the filesystem.
    pub picks: Vec<Pick>,
    /// What needed no module (built in), one line each.
    pub notes: Vec<String>,
}

impl HostModules {
    pub fn modules(&self) -> Vec<String> {
        self.picks.iter().map(|p| p.module.clone()).collect()
    }

    /// The lines `mkinitramfs --host` prints.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "host-only: root device {} ({}:{}), {}, from {}\n",
            self.device.display(),
            self.devno.0,
            self.devno.1,
            self.fstype,
            self.source
        );
        for p in &self.picks {
            out.push_str(&format!("  {}: {}\n", p.module, p.why));
        }
        for n in &self.notes {
            out.push_str(&format!("  ({n})\n"));
        }
        out
    }
}

/// What `--host` can fail on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("host-only: reading {}: {errno}", path.display())]
    Read { path: PathBuf, errno: Errno },
    /// A file that is there but cannot be read safely: a FIFO, a device,
    /// larger than its cap.
    #[error("host-only: {0}")]
    Input(ReadError),
    /// A path in sysfs that is refused: a symlink out of the tree or to
    /// nothing in it, devices stacked too deep.
    #[error("host-only: {}: {why}", path.display())]
    Refused { path: PathBuf, why: String },
    #[error("host-only: no mount of / in {}", path.display())]
    NoRootMount { path: PathBuf },
    #[error(
        "host-only: the root filesystem ({fstype} from {source_name}) is not on a block device; name it with \
         --root-device"
    )]
    NotABlockDevice { fstype: String, source_name: String },
    #[error("host-only: --root-device {0:?}: expected MAJ:MIN, a /dev path or a block device name")]
    BadDevice(String),
    #[error("host-only: no block device {devno} in {} ({why})", sysfs.display())]
    NoDevice { devno: String, sysfs: PathBuf, why: String },
    #[error("host-only: the filesystem type of {devno} is not in {}: give --root-fstype", mountinfo.display())]
    NoFstype { devno: String, mountinfo: PathBuf },
    #[error(transparent)]
    Modules(#[from] ModError),
}

/// One line of mountinfo: (MAJ, MIN), mount point, fstype, source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    pub devno: (u32, u32),
    pub point: String,
    pub fstype: String,
    pub source: String,
}

/// `\040` and friends, as mountinfo escapes white space and `\`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // Three octal digits of one byte: `\377` at most (a `\777` in a
        // captured file is kept as it is, not wrapped around).
        if b[i] == b'\\'
            && i + 3 < b.len()
            && (b'0'..=b'3').contains(&b[i + 1])
            && b[i + 2..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/mountinfo`; lines that do not parse are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let (major, minor) = f.get(2)?.split_once(':')?;
            let point = unescape(f.get(4)?);
            let mut r = right.split(' ');
            let fstype = r.next()?.to_string();
            let source = unescape(r.next()?);
            Some(MountLine { devno: (major.parse().ok()?, minor.parse().ok()?), point, fstype, source })
        })
        .collect()
}

/// The same error, naming `path` (read_in_root names the path inside the
/// root, `/devices/...`; the user wants the one they gave).
fn naming(e: ReadError, path: PathBuf) -> ReadError {
    match e {
        ReadError::Open { errno, .. } => ReadError::Open { path, errno },
        ReadError::Resolve { error, .. } => ReadError::Resolve { path, error },
        ReadError::NotRegular { kind, .. } => ReadError::NotRegular { path, kind },
        ReadError::TooLarge { cap, .. } => ReadError::TooLarge { path, cap },
    }
}

/// sysfs, or a captured copy of it, as a root: every path is resolved
/// inside it ([`resolve_at`]: symlinks followed by hand, absolute ones taken
/// from the tree's top, a `..` above it refused), every file is read with
/// [`confine::read_in_root`]. Paths are relative to the tree and, once
/// resolved, free of symlinks.
struct Sysfs {
    /// As given, for messages.
    dir: PathBuf,
    fd: OwnedFd,
}

impl Sysfs {
    fn open(dir: &Path) -> Result<Sysfs, HostError> {
        let fd =
            confine::open_root(dir).map_err(|e| HostError::Read { path: dir.into(), errno: e.errno() })?;
        Ok(Sysfs { dir: dir.into(), fd })
    }

    /// `rel` as the path the user knows.
    fn full(&self, rel: &Path) -> PathBuf {
        self.dir.join(rel)
    }

    /// `rel` resolved inside the tree; None when it is not there. A symlink
    /// on the way that leads out of the tree, or to nothing in it, is an
    /// error.
    fn resolve(&self, rel: &Path) -> Result<Option<PathBuf>, HostError> {
        let refused = |why: String| Err(HostError::Refused { path: self.full(rel), why });
        match resolve_at(&self.fd, rel) {
            Ok(r) => Ok(Some(r)),
            Err(ResolveError::Missing { errno: Errno::NOENT, .. } | ResolveError::NotADirectory { .. }) => {
                match self.dangling(rel) {
                    Some(e) => Err(e),
                    None => Ok(None),
                }
            }
            Err(ResolveError::Escapes { .. }) => {
                refused(format!("a symlink or `..` on the way leads out of {}: refused", self.dir.display()))
            }
            Err(ResolveError::Loop { .. }) => {
                refused(format!("more than {MAX_SYMLINKS} symlinks on the way (a loop): refused"))
            }
            Err(ResolveError::Missing { errno, .. }) => {
                Err(HostError::Input(ReadError::Open { path: self.full(rel), errno }))
            }
        }
    }

    /// Why `rel`, which resolves to nothing, is not simply missing: the
    /// first symlink on its way that leads to nothing inside the tree (an
    /// absolute link to `/dev/zero`, a link to a host path).
    fn dangling(&self, rel: &Path) -> Option<HostError> {
        let mut at = PathBuf::new();
        for comp in rel.components() {
            let Component::Normal(name) = comp else { return None };
            let parent = resolve_at(&self.fd, &at).ok()?;
            at.push(name);
            let st = rustix::fs::statat(&self.fd, parent.join(name), AtFlags::SYMLINK_NOFOLLOW).ok()?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Symlink && resolve_at(&self.fd, &at).is_err()
            {
                let target = rustix::fs::readlinkat(&self.fd, parent.join(name), Vec::new()).ok()?;
                let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
                return Some(HostError::Refused {
                    path: self.full(&at),
                    why: format!(
                        "a symlink to {:?}, which leads to nothing inside {} (symlinks are followed only \
                         inside it): refused",
                        target.display().to_string(),
                        self.dir.display()
                    ),
                });
            }
        }
        None
    }

    /// The text of the file `rel`; None when there is no such file. A file
    /// that is there but is not a regular file, or is larger than
    /// [`SYSFS_FILE_CAP`], is an error that names it.
    fn read(&self, rel: &Path) -> Result<Option<String>, HostError> {
        let Some(r) = self.resolve(rel)? else { return Ok(None) };
        match confine::read_in_root(&self.fd, &r, SYSFS_FILE_CAP) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) => Err(HostError::Input(naming(e, self.full(rel)))),
        }
    }

    /// What `rel` is (a directory, a file...), inside the tree.
    fn kind(&self, rel: &Path) -> Result<Option<FileType>, HostError> {
        let Some(r) = self.resolve(rel)? else { return Ok(None) };
        let st = rustix::fs::statat(
            &self.fd,
            if r.as_os_str().is_empty() { Path::new(".") } else { &r },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| HostError::Input(ReadError::Open { path: self.full(rel), errno: e.into() }))?;
        Ok(Some(FileType::from_raw_mode(st.st_mode)))
    }

    fn is_dir(&self, rel: &Path) -> Result<bool, HostError> {
        Ok(self.kind(rel)? == Some(FileType::Directory))
    }

    /// The last component of the target of the symlink `name` in the
    /// resolved directory `dir` (the target need not exist).
    fn link_name(&self, dir: &Path, name: &str) -> Option<String> {
        let target = rustix::fs::readlinkat(&self.fd, dir.join(name), Vec::new()).ok()?;
        let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
        Some(target.file_name()?.to_string_lossy().into_owned())
    }

    /// The names in the directory `rel`; none when it is not there.
    fn entries(&self, rel: &Path) -> Result<Vec<OsString>, HostError> {
        let Some(r) = self.resolve(rel)? else { return Ok(Vec::new()) };
        let err = |errno: Errno| HostError::Input(ReadError::Open { path: self.full(rel), errno });
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK;
        let fd = match confine::open_in_root(&self.fd, &r, flags) {
            Ok(fd) => fd,
            Err(e) if e.errno() == Errno::NOTDIR => return Ok(Vec::new()),
            Err(e) => return Err(err(e.errno())),
        };
        let dir = rustix::fs::Dir::new(fd).map_err(|e| err(e.into()))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| err(e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        }
        names.sort();
        Ok(names)
    }
}

/// `MAJ:MIN` from a sysfs `dev` file; None when there is none or it does
/// not hold one.
fn read_devno(sys: &Sysfs, rel: &Path) -> Result<Option<(u32, u32)>, HostError> {
    let Some(text) = sys.read(rel)? else { return Ok(None) };
    let parse = || {
        let (a, b) = text.trim().split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    Ok(parse())
}

/// The device number of a `/dev/...` node (its `rdev`), else of the block
/// device of that name in sysfs.
fn devno_of_node(path: &str, sys: &Sysfs) -> Result<Option<(u32, u32)>, HostError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if let Ok(md) = std::fs::metadata(path)
        && md.file_type().is_block_device()
    {
        let rdev = md.rdev();
        return Ok(Some((rustix::fs::major(rdev), rustix::fs::minor(rdev))));
    }
    let Some(name) = Path::new(path).file_name() else { return Ok(None) };
    read_devno(sys, &Path::new("class/block").join(name).join("dev"))
}

/// The mount table: `O_NONBLOCK`, a regular file, at most [`MOUNTINFO_CAP`].
fn read_mountinfo(path: &Path) -> Result<Vec<MountLine>, HostError> {
    let text = confine::read_text(path, MOUNTINFO_CAP).map_err(HostError::Input)?;
    Ok(parse_mountinfo(&text))
}

/// The root device and its filesystem type, from the options or mountinfo.
fn root_device(opts: &HostOptions, sys: &Sysfs) -> Result<((u32, u32), String, String), HostError> {
    let mounts = || read_mountinfo(&opts.mountinfo);
    if let Some(dev) = &opts.root_device {
        let devno = if let Some((a, b)) = dev.split_once(':')
            && let (Ok(a), Ok(b)) = (a.parse(), b.parse())
        {
            (a, b)
        } else if dev.starts_with("/dev/") {
            devno_of_node(dev, sys)?.ok_or_else(|| HostError::BadDevice(dev.clone()))?
        } else if !dev.contains('/') && !dev.is_empty() {
            read_devno(sys, &Path::new("class/block").join(dev).join("dev"))?
                .ok_or_else(|| HostError::BadDevice(dev.clone()))?
        } else {
            return Err(HostError::BadDevice(dev.clone()));
        };
        let fstype =
            match &opts.root_fstype {
                Some(t) => t.clone(),
                None => mounts()?.into_iter().rev().find(|m| m.devno == devno).map(|m| m.fstype).ok_or_else(
                    || HostError::NoFstype {
                        devno: format!("{}:{}", devno.0, devno.1),
                        mountinfo: opts.mountinfo.clone(),
                    },
                )?,
            };
        return Ok((devno, fstype, format!("--root-device {dev}")));
    }
    let mounts = mounts()?;
    // The last mount on a point is the one on top.
    let on = |point: &str| mounts.iter().rev().find(|m| m.point == point).cloned();
    let root = on("/").ok_or_else(|| HostError::NoRootMount { path: opts.mountinfo.clone() })?;
    for m in std::iter::once(root.clone()).chain(on("/sysroot")) {
        // Major 0: no block device of its own (btrfs, overlay, tmpfs); a
        // source in /dev still names one (btrfs).
        let devno = if m.devno.0 != 0 {
            Some(m.devno)
        } else if m.source.starts_with("/dev/") {
            devno_of_node(&m.source, sys)?
        } else {
            None
        };
        if let Some(devno) = devno {
            let fstype = opts.root_fstype.clone().unwrap_or(m.fstype.clone());
            return Ok((devno, fstype, format!("the mount of {} in {}", m.point, opts.mountinfo.display())));
        }
    }
    Err(HostError::NotABlockDevice { fstype: root.fstype, source_name: root.source })
}

/// Module lookups by modalias: the kernel's `modules.alias` when it is
/// there (what depmod wrote), else every module's own aliases.
struct Aliases {
    table: Option<Vec<(String, String)>>,
}

impl Aliases {
    /// `modules.alias` in the module directory `dir`: none when it is not
    /// there; an error when it is not a regular file or is larger than
    /// [`MODULES_ALIAS_CAP`].
    fn open(dir: &Path) -> Result<Aliases, HostError> {
        let text = match confine::read_text(&dir.join("modules.alias"), MODULES_ALIAS_CAP) {
            Ok(text) => text,
            Err(e) if e.is_not_found() => return Ok(Aliases { table: None }),
            Err(e) => return Err(HostError::Input(e)),
        };
        let table = text
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next()? == "alias").then_some(())?;
                Some((w.next()?.to_string(), normalize(w.next()?)))
            })
            .collect();
        Ok(Aliases { table: Some(table) })
    }

    fn lookup(&self, tree: &mut ModuleTree, modalias: &str) -> Result<Vec<String>, ModError> {
        Ok(match &self.table {
            Some(t) => {
                let mut v: Vec<String> =
                    t.iter().filter(|(p, _)| alias_matches(p, modalias)).map(|(_, m)| m.clone()).collect();
                v.sort();
                v.dedup();
                v
            }
            None => match tree.resolve(modalias)? {
                Resolved::Modules(m) => m,
                Resolved::BuiltIn | Resolved::NotFound => Vec::new(),
            },
        })
    }
}

/// A name that is one plain path component (a module name from
/// `modules.alias` looked up in `/sys/module`).
fn plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// What is left to do in the walk (a stack instead of recursion, so that
/// a chain of any length is a bounded loop).
enum Task {
    /// A block device (resolved, under `devices/`), `depth` levels of
    /// `slaves/` below the root device.
    Block(PathBuf, usize),
    /// The dm or md modules of a device and the devices in its `slaves/`.
    Stacked { dir: PathBuf, name: String, depth: usize },
    /// The drivers of every device above a disk.
    Above(PathBuf),
}

struct Walk<'a> {
    sys: &'a Sysfs,
    /// `devices`, resolved.
    devices: PathBuf,
    tree: &'a mut ModuleTree,
    aliases: Aliases,
    picks: Vec<Pick>,
    notes: Vec<String>,
    seen_dirs: BTreeSet<PathBuf>,
}

impl Walk<'_> {
    /// `rel` as the machine names it (`/sys/devices/...`).
    fn show(&self, rel: &Path) -> String {
        format!("/sys/{}", rel.display())
    }

    fn add(&mut self, module: &str, why: String) {
        let module = normalize(module);
        if self.tree.is_builtin(&module) {
            self.notes.push(format!("{module} is built into the kernel: {why}"));
        } else if self.tree.path(&module).is_none() {
            self.notes.push(format!("{module} is not a module of this kernel, left out: {why}"));
        } else if !self.picks.iter().any(|p| p.module == module) {
            self.picks.push(Pick { module, why });
        }
    }

    /// The block device `devno` (its disk too, for a partition), the
    /// devices below it and every device above it.
    fn block_device(&mut self, devno: (u32, u32)) -> Result<PathBuf, HostError> {
        let key = format!("{}:{}", devno.0, devno.1);
        let no_device =
            |why: String| HostError::NoDevice { devno: key.clone(), sysfs: self.sys.dir.clone(), why };
        let link = Path::new("dev/block").join(&key);
        let dir = match self.sys.resolve(&link) {
            Ok(Some(dir)) => dir,
            Ok(None) => {
                return Err(no_device(format!("{}: {}", self.sys.full(&link).display(), Errno::NOENT)));
            }
            Err(HostError::Refused { path, why }) => {
                return Err(no_device(format!("{}: {why}", path.display())));
            }
            Err(e) => return Err(e),
        };
        if !dir.starts_with(&self.devices) {
            return Err(no_device(format!(
                "{} is not under {}",
                self.sys.full(&dir).display(),
                self.sys.full(&self.devices).display()
            )));
        }
        self.walk(dir.clone())?;
        Ok(dir)
    }

    /// From the block device `top` down `slaves/` and up to the bus, in the
    /// order a recursive walk would take: a device's dm/md modules, the
    /// devices below it, then the drivers above it.
    fn walk(&mut self, top: PathBuf) -> Result<(), HostError> {
        let mut todo = vec![Task::Block(top, 0)];
        while let Some(task) = todo.pop() {
            match task {
                Task::Block(dir, depth) => {
                    if !self.seen_dirs.insert(dir.clone()) {
                        continue;
                    }
                    if depth > MAX_STACK_DEPTH {
                        return Err(HostError::Refused {
                            path: self.sys.full(&dir),
                            why: format!(
                                "block devices stacked more than {MAX_STACK_DEPTH} deep (slaves/) below the root \
                                 device: refused"
                            ),
                        });
                    }
                    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    let partition = self.sys.kind(&dir.join("partition"))? == Some(FileType::RegularFile);
                    let disk = match dir.parent() {
                        Some(p) if partition => p.to_path_buf(),
                        _ => dir.clone(),
                    };
                    // Pushed in reverse: the mapping or array first (what
                    // is below it, its own modules), then every device
                    // above the disk.
                    todo.push(Task::Above(disk.clone()));
                    if disk != dir {
                        todo.push(Task::Stacked { dir: disk, name: name.clone(), depth });
                    }
                    todo.push(Task::Stacked { dir, name, depth });
                }
                Task::Stacked { dir, name, depth } => {
                    let below = self.stacked(&dir, &name)?;
                    todo.extend(below.into_iter().rev().map(|b| Task::Block(b, depth + 1)));
                }
                Task::Above(disk) => {
                    let mut cur = disk.parent();
                    while let Some(d) = cur {
                        if !d.starts_with(&self.devices) || d == self.devices {
                            break;
                        }
                        self.driver_of(d)?;
                        cur = d.parent();
                    }
                }
            }
        }
        Ok(())
    }

    /// A dm or md device: its modules; returns the devices in its
    /// `slaves/`, resolved, sorted.
    fn stacked(&mut self, dir: &Path, name: &str) -> Result<Vec<PathBuf>, HostError> {
        if self.sys.is_dir(&dir.join("dm"))? {
            let uuid = self.sys.read(&dir.join("dm/uuid"))?.unwrap_or_default();
            self.add("dm_mod", format!("{name} is a device-mapper device"));
            if uuid.starts_with("CRYPT-VERITY-") {
                self.add("dm_verity", format!("{name} is a dm-verity mapping ({})", uuid.trim()));
            } else if uuid.starts_with("CRYPT-") {
                self.add("dm_crypt", format!("{name} is a dm-crypt mapping ({})", uuid.trim()));
            }
        }
        if self.sys.is_dir(&dir.join("md"))? {
            self.add("md_mod", format!("{name} is an md array"));
            let level = self.sys.read(&dir.join("md/level"))?.unwrap_or_default();
            let module = match level.trim() {
                "raid0" => Some("raid0"),
                "raid1" => Some("raid1"),
                "raid10" => Some("raid10"),
                "raid4" | "raid5" | "raid6" => Some("raid456"),
                _ => None,
            };
            if let Some(m) = module {
                self.add(m, format!("{name} is an md {} array", level.trim()));
            }
        }
        let slaves = dir.join("slaves");
        let mut below = Vec::new();
        for entry in self.sys.entries(&slaves)? {
            let rel = slaves.join(&entry);
            let Some(b) = self.sys.resolve(&rel)? else {
                return Err(HostError::Refused {
                    path: self.sys.full(&rel),
                    why: "leads to nothing: the device below cannot be read".into(),
                });
            };
            if !b.starts_with(&self.devices) || b == self.devices {
                return Err(HostError::Refused {
                    path: self.sys.full(&rel),
                    why: format!(
                        "leads to {}, not a device under {}",
                        self.sys.full(&b).display(),
                        self.sys.full(&self.devices).display()
                    ),
                });
            }
            below.push(b);
        }
        below.sort();
        Ok(below)
    }

    /// The module of the driver bound to the device at `dir`, if any.
    fn driver_of(&mut self, dir: &Path) -> Result<(), HostError> {
        let Some(driver) = self.sys.link_name(dir, "driver") else { return Ok(()) };
        let shown = self.show(dir);
        let module = match self.sys.resolve(&dir.join("driver"))? {
            Some(d) => self.sys.link_name(&d, "module"),
            None => None,
        };
        if let Some(module) = module {
            self.add(&module, format!("driver {driver} of {shown}"));
            return Ok(());
        }
        // No module link: a built-in driver, or one whose bus does not make
        // the link (mmc). Then it is a module matching the device's
        // modalias that is loaded (in /sys/module), the one named as the
        // driver if there is one.
        let alias = self.sys.read(&dir.join("uevent"))?.and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MODALIAS="))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        });
        let Some(alias) = alias else {
            self.notes.push(format!("driver {driver} of {shown} is built into the kernel"));
            return Ok(());
        };
        let found = self.aliases.lookup(self.tree, &alias)?;
        let mut loaded = Vec::new();
        for m in found {
            if plain_name(&m) && self.sys.is_dir(&Path::new("module").join(&m))? {
                loaded.push(m);
            }
        }
        let same = normalize(&driver);
        let chosen: Vec<String> = match loaded.iter().find(|m| **m == same) {
            Some(m) => vec![m.clone()],
            None => loaded,
        };
        if chosen.is_empty() {
            self.notes.push(format!("driver {driver} of {shown} ({alias}) is built into the kernel"));
        }
        for m in chosen {
            self.add(&m, format!("driver {driver} of {shown}, by its modalias {alias}"));
        }
        Ok(())
    }
}

/// The modules on the path to the root filesystem, each with its reason.
pub fn pick(opts: &HostOptions, tree: &mut ModuleTree) -> Result<HostModules, HostError> {
    let sys = Sysfs::open(&opts.sysfs)?;
    let (devno, fstype, source) = root_device(opts, &sys)?;
    let devices = sys
        .resolve(Path::new("devices"))?
        .ok_or_else(|| HostError::Read { path: opts.sysfs.join("devices"), errno: Errno::NOENT })?;
    let aliases = Aliases::open(tree.dir())?;
    let mut walk = Walk {
        sys: &sys,
        devices,
        tree,
        aliases,
        picks: Vec::new(),
        notes: Vec::new(),
        seen_dirs: BTreeSet::new(),
    };
    let dir = walk.block_device(devno)?;
    let device = PathBuf::from(walk.show(&dir));
    // The filesystem: a module of that name, or one with the alias fs-TYPE.
    let why = format!("the root filesystem's type ({fstype})");
    if walk.tree.path(&fstype).is_some() || walk.tree.is_builtin(&fstype) {
        walk.add(&fstype, why);
    } else {
        match walk.tree.resolve(&format!("fs-{fstype}"))? {
            Resolved::Modules(m) => {
                for m in m {
                    walk.add(&m, why.clone());
                }
            }
            Resolved::BuiltIn => walk.notes.push(format!("filesystem {fstype} is built into the kernel")),
            Resolved::NotFound => {
                walk.notes.push(format!("no module for filesystem {fstype}: assumed built in"))
            }
        }
    }
    Ok(HostModules { device, devno, fstype, source, picks: walk.picks, notes: walk.notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::modules_dir;
    use rootstock_core::testutil::TempDir;
    use std::os::unix::fs::symlink;

    /// A symlink at `link` to `target` (both absolute), as the kernel makes
    /// them: relative (`../../devices/...`).
    fn rel_symlink(target: &Path, link: &Path) {
        let from: Vec<_> = link.parent().unwrap().components().collect();
        let to: Vec<_> = target.components().collect();
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        let mut rel = PathBuf::new();
        for _ in common..from.len() {
            rel.push("..");
        }
        for c in &to[common..] {
            rel.push(c);
        }
        symlink(rel, link).unwrap();
    }

    /// A sysfs tree made of directories, files and symlinks, laid out as
    /// the kernel lays out /sys (paths taken from a Debian 6.1 kernel under
    /// QEMU).
    struct FakeSys {
        t: TempDir,
    }

    impl FakeSys {
        fn new() -> FakeSys {
            let t = TempDir::new();
            for d in ["sys/devices", "sys/dev/block", "sys/class/block", "sys/module"] {
                std::fs::create_dir_all(t.path().join(d)).unwrap();
            }
            FakeSys { t }
        }

        fn sys(&self) -> PathBuf {
            self.t.path().join("sys")
        }

        /// A device below /sys/devices, with its driver (and the driver's
        /// module link, when given) and its modalias.
        fn device(&self, rel: &str, driver: Option<(&str, Option<&str>)>, modalias: Option<&str>) -> PathBuf {
            let dir = self.sys().join("devices").join(rel);
            std::fs::create_dir_all(&dir).unwrap();
            let mut uevent = String::new();
            if let Some((drv, module)) = driver {
                let ddir = self.sys().join("bus/any/drivers").join(drv);
                std::fs::create_dir_all(&ddir).unwrap();
                if let Some(m) = module {
                    let mdir = self.sys().join("module").join(m);
                    std::fs::create_dir_all(&mdir).unwrap();
                    if !ddir.join("module").exists() {
                        rel_symlink(&mdir, &ddir.join("module"));
                    }
                }
                rel_symlink(&ddir, &dir.join("driver"));
                uevent.push_str(&format!("DRIVER={drv}\n"));
            }
            if let Some(a) = modalias {
                uevent.push_str(&format!("MODALIAS={a}\n"));
            }
            std::fs::write(dir.join("uevent"), uevent).unwrap();
            dir
        }

        /// A block device `name` (a partition when `partition` is given) in
        /// the device directory `rel`.
        fn block(&self, rel: &str, name: &str, devno: &str, partition: Option<u32>) -> PathBuf {
            let dir = self.sys().join("devices").join(rel).join(name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("dev"), format!("{devno}\n")).unwrap();
            if let Some(n) = partition {
                std::fs::write(dir.join("partition"), format!("{n}\n")).unwrap();
            }
            rel_symlink(&dir, &self.sys().join("dev/block").join(devno));
            rel_symlink(&dir, &self.sys().join("class/block").join(name));
            dir
        }

        fn mountinfo(&self, text: &str) -> PathBuf {
            let p = self.t.path().join("mountinfo");
            std::fs::write(&p, text).unwrap();
            p
        }

        fn opts(&self, mountinfo: &str) -> HostOptions {
            HostOptions { sysfs: self.sys(), mountinfo: self.mountinfo(mountinfo), ..HostOptions::default() }
        }
    }

    const PCI: &str = "pci0000:00";

    /// An AHCI controller (q35's) with a disk sda, partition sda2.
    fn ahci(s: &FakeSys) {
        s.device(
            &format!("{PCI}/0000:00:1f.2"),
            Some(("ahci", Some("ahci"))),
            Some("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"),
        );
        for d in ["ata1", "ata1/host0", "ata1/host0/target0:0:0"] {
            s.device(&format!("{PCI}/0000:00:1f.2/{d}"), None, None);
        }
        let lun = format!("{PCI}/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0");
        s.device(&lun, Some(("sd", Some("sd_mod"))), Some("scsi:t-0x00"));
        s.block(&format!("{lun}/block"), "sda", "8:0", None);
        s.block(&format!("{lun}/block/sda"), "sda2", "8:2", Some(2));
    }

    fn tree() -> ModuleTree {
        let (dir, kver) = modules_dir();
        ModuleTree::open(&dir, &kver).unwrap()
    }

    fn picked(h: &HostModules) -> Vec<&str> {
        h.picks.iter().map(|p| p.module.as_str()).collect()
    }

    const ROOT_SDA2: &str = "22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw\n";

    #[test]
    fn the_root_disks_drivers_up_to_the_pci_bus_and_its_filesystem() {
        let mut tree = tree();
        let s = FakeSys::new();
        ahci(&s);
        let h = pick(&s.opts(ROOT_SDA2), &mut tree).unwrap();
        assert_eq!(picked(&h), ["sd_mod", "ahci", "ext4"]);
        assert_eq!((h.devno, h.fstype.as_str()), ((8, 2), "ext4"));
        assert_eq!(
            h.device,
            Path::new("/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2")
        );
        let text = h.describe();
        assert!(text.starts_with("host-only: root device /sys/devices/pci0000:00/0000:00:1f.2/"), "{text}");
        assert!(text.contains("\n  ahci: driver ahci of /sys/devices/pci0000:00/0000:00:1f.2\n"), "{text}");
        assert!(text.contains("\n  sd_mod: driver sd of /sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0\n"), "{text}");
        assert!(text.contains("\n  ext4: the root filesystem's type (ext4)\n"), "{text}");
        assert!(text.contains(", ext4, from the mount of / in "), "{text}");
    }

    #[test]
    fn nvme_behind_a_root_port_on_xfs_by_device_name() {
        let mut tree = tree();
        let s = FakeSys::new();
        // The root port's driver (pcieport) is built in: no module link.
        s.device(
            &format!("{PCI}/0000:00:1c.0"),
            Some(("pcieport", None)),
            Some("pci:v00008086d00002918sv00001AF4sd00001100bc06sc04i00"),
        );
        let ctrl = format!("{PCI}/0000:00:1c.0/0000:01:00.0");
        s.device(
            &ctrl,
            Some(("nvme", Some("nvme"))),
            Some("pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02"),
        );
        s.device(&format!("{ctrl}/nvme/nvme0"), None, None);
        s.block(&format!("{ctrl}/nvme/nvme0"), "nvme0n1", "259:0", None);
        s.block(&format!("{ctrl}/nvme/nvme0/nvme0n1"), "nvme0n1p2", "259:2", Some(2));
        let mut o = s.opts("30 1 259:2 / / rw - xfs /dev/nvme0n1p2 rw\n");
        o.root_device = Some("nvme0n1p2".into());
        let h = pick(&o, &mut tree).unwrap();
        assert_eq!(picked(&h), ["nvme", "xfs"]);
        assert_eq!(h.source, "--root-device nvme0n1p2");
        assert!(
            h.notes.iter().any(|n| n.contains("driver pcieport of /sys/devices/pci0000:00/0000:00:1c.0")
                && n.contains("built into the kernel")),
            "{:?}",
            h.notes
        );
    }

    #[test]
    fn an_sd_cards_driver_without_a_module_link_is_found_by_its_modalias() {
        let mut tree = tree();
        let s = FakeSys::new();
        let host = format!("{PCI}/0000:00:0a.0");
        s.device(
            &host,
            Some(("sdhci-pci", Some("sdhci_pci"))),
            Some("pci:v00001B36d00000007sv00001AF4sd00001100bc08sc05i01"),
        );
        s.device(&format!("{host}/mmc_host/mmc0"), None, None);
        let card = format!("{host}/mmc_host/mmc0/mmc0:4567");
        s.device(&card, Some(("mmcblk", None)), Some("mmc:block"));
        std::fs::create_dir_all(s.sys().join("module/mmc_block")).unwrap();
        s.block(&format!("{card}/block"), "mmcblk0", "179:0", None);
        s.block(&format!("{card}/block/mmcblk0"), "mmcblk0p2", "179:2", Some(2));
        let mut o = s.opts("");
        (o.root_device, o.root_fstype) = (Some("179:2".into()), Some("vfat".into()));
        let h = pick(&o, &mut tree).unwrap();
        assert_eq!(picked(&h), ["mmc_block", "sdhci_pci", "vfat"]);
        assert!(h.picks[0].why.contains("by its modalias mmc:block"), "{:?}", h.picks);
    }

    #[test]
    fn a_uas_stick_on_xhci_with_btrfs_found_by_the_mount_source() {
        let mut tree = tree();
        let s = FakeSys::new();
        let xhci = format!("{PCI}/0000:00:05.0");
        s.device(
            &xhci,
            Some(("xhci_hcd", Some("xhci_pci"))),
            Some("pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30"),
        );
        s.device(&format!("{xhci}/usb3"), Some(("usb", Some("usbcore"))), None);
        s.device(&format!("{xhci}/usb3/3-2"), Some(("usb", Some("usbcore"))), None);
        let intf = format!("{xhci}/usb3/3-2/3-2:1.0");
        s.device(
            &intf,
            Some(("uas", Some("uas"))),
            Some("usb:v46F4p0003d0000dc00dsc00dp00ic08isc06ip62in00"),
        );
        s.device(&format!("{intf}/host13/target13:0:0"), None, None);
        let lun = format!("{intf}/host13/target13:0:0/13:0:0:0");
        s.device(&lun, Some(("sd", Some("sd_mod"))), Some("scsi:t-0x00"));
        s.block(&format!("{lun}/block"), "sdzz", "65:160", None);
        // btrfs: mountinfo shows an anonymous device number.
        let h = pick(&s.opts("25 1 0:31 /@ / rw - btrfs /dev/sdzz rw,subvol=/@\n"), &mut tree).unwrap();
        assert_eq!(picked(&h), ["sd_mod", "uas", "usbcore", "xhci_pci", "btrfs"]);
        assert_eq!(h.devno, (65, 160));
    }

    #[test]
    fn a_luks_mapping_brings_dm_crypt_and_the_disk_below() {
        let mut tree = tree();
        let s = FakeSys::new();
        ahci(&s);
        let dm = s.block("virtual/block", "dm-0", "253:0", None);
        std::fs::create_dir_all(dm.join("dm")).unwrap();
        std::fs::write(dm.join("dm/uuid"), "CRYPT-LUKS2-0123456789abcdef-root\n").unwrap();
        std::fs::create_dir_all(dm.join("slaves")).unwrap();
        rel_symlink(&s.sys().join("class/block/sda2").canonicalize().unwrap(), &dm.join("slaves/sda2"));
        let h = pick(&s.opts("22 1 253:0 / / rw - ext4 /dev/mapper/root rw\n"), &mut tree).unwrap();
        assert_eq!(picked(&h), ["dm_mod", "dm_crypt", "sd_mod", "ahci", "ext4"]);
    }

    #[test]
    fn a_composefs_root_is_found_at_sysroot_and_other_cases_are_errors() {
        let mut tree = tree();
        let s = FakeSys::new();
        ahci(&s);
        let overlay = "40 1 0:40 / / ro - overlay overlay ro,lowerdir=/x\n";
        let h = pick(&s.opts(&format!("{overlay}41 40 8:2 / /sysroot ro - xfs /dev/sda2 ro\n")), &mut tree)
            .unwrap();
        assert_eq!(picked(&h), ["sd_mod", "ahci", "xfs"]);
        assert!(h.source.starts_with("the mount of /sysroot in "), "{}", h.source);

        let err = |o: HostOptions, tree: &mut ModuleTree| pick(&o, tree).unwrap_err().to_string();
        assert_eq!(
            err(s.opts(overlay), &mut tree),
            "host-only: the root filesystem (overlay from overlay) is not on a block device; name it with --root-device"
        );
        assert!(err(s.opts("garbage\n"), &mut tree).starts_with("host-only: no mount of / in "));
        let e = err(s.opts("22 1 8:5 / / rw - ext4 /dev/sda5 rw\n"), &mut tree);
        assert!(e.starts_with("host-only: no block device 8:5 in "), "{e}");
        for bad in ["../sda2", "/etc/passwd", "", "nosuchdisk"] {
            let mut o = s.opts(ROOT_SDA2);
            o.root_device = Some(bad.into());
            assert_eq!(
                err(o, &mut tree),
                format!(
                    "host-only: --root-device {bad:?}: expected MAJ:MIN, a /dev path or a block device name"
                )
            );
        }
        let mut o = s.opts("22 1 8:1 / /boot rw - vfat /dev/sda1 rw\n");
        o.root_device = Some("8:2".into());
        assert!(err(o, &mut tree).contains("the filesystem type of 8:2 is not in "));
        // A device link leading out of /sys/devices.
        std::fs::create_dir_all(s.sys().join("elsewhere")).unwrap();
        rel_symlink(&s.sys().join("elsewhere"), &s.sys().join("dev/block/8:9"));
        let e = err(s.opts("22 1 8:9 / / rw - ext4 /dev/x rw\n"), &mut tree);
        assert!(e.contains("is not under"), "{e}");
    }

    /// dm-0 as the root, with dm-1 ... dm-`n` below it, each the only
    /// device in the `slaves/` of the one above, and sda2 below the last.
    fn dm_chain(s: &FakeSys, n: usize) {
        for i in 0..=n {
            let dm = s.block("virtual/block", &format!("dm-{i}"), &format!("253:{i}"), None);
            std::fs::create_dir_all(dm.join("dm")).unwrap();
            std::fs::create_dir_all(dm.join("slaves")).unwrap();
            let below = if i == n {
                s.sys()
                    .join(format!("devices/{PCI}/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2"))
            } else {
                s.sys().join(format!("devices/virtual/block/dm-{}", i + 1))
            };
            rel_symlink(&below, &dm.join("slaves").join(below.file_name().unwrap()));
        }
    }

    const ROOT_DM0: &str = "22 1 253:0 / / rw - ext4 /dev/mapper/root rw\n";

    #[test]
    fn stacks_up_to_the_depth_limit_are_walked_deeper_ones_are_errors() {
        let mut tree = tree();
        let s = FakeSys::new();
        ahci(&s);
        dm_chain(&s, MAX_STACK_DEPTH - 1);
        let h = pick(&s.opts(ROOT_DM0), &mut tree).unwrap();
        assert_eq!(picked(&h), ["dm_mod", "sd_mod", "ahci", "ext4"]);

        let s = FakeSys::new();
        ahci(&s);
        dm_chain(&s, MAX_STACK_DEPTH);
        let e = pick(&s.opts(ROOT_DM0), &mut tree).unwrap_err().to_string();
        assert!(e.ends_with("block/sda/sda2: block devices stacked more than 32 deep (slaves/) below the root device: refused"), "{e}");

        // A loop (dm-1's slaves/ holds dm-0) ends: each device is walked once.
        let s = FakeSys::new();
        ahci(&s);
        dm_chain(&s, 1);
        rel_symlink(
            &s.sys().join("devices/virtual/block/dm-0"),
            &s.sys().join("devices/virtual/block/dm-1/slaves/dm-0"),
        );
        let h = pick(&s.opts(ROOT_DM0), &mut tree).unwrap();
        assert_eq!(picked(&h), ["dm_mod", "sd_mod", "ahci", "ext4"]);
    }

    #[test]
    fn missing_files_mean_what_they_meant_and_oversized_ones_are_errors() {
        let mut tree = tree();
        let s = FakeSys::new();
        ahci(&s);
        // No dm/uuid: a mapping, not a LUKS one; no md/level: an array of
        // no known level.
        dm_chain(&s, 0);
        std::fs::create_dir_all(s.sys().join("devices/virtual/block/dm-0/md")).unwrap();
        let h = pick(&s.opts(ROOT_DM0), &mut tree).unwrap();
        assert_eq!(picked(&h), ["dm_mod", "md_mod", "sd_mod", "ahci", "ext4"]);

        let big = "CRYPT-".to_string() + &"x".repeat(SYSFS_FILE_CAP as usize);
        std::fs::write(s.sys().join("devices/virtual/block/dm-0/dm/uuid"), &big).unwrap();
        let e = pick(&s.opts(ROOT_DM0), &mut tree).unwrap_err().to_string();
        assert!(e.ends_with("dm-0/dm/uuid: larger than the 65536-byte limit: refused"), "{e}");

        // A controller without uevent: its driver is built in.
        let s = FakeSys::new();
        ahci(&s);
        let ctrl = s.sys().join(format!("devices/{PCI}/0000:00:1f.2"));
        std::fs::remove_file(ctrl.join("driver")).unwrap();
        rel_symlink(&s.sys().join("bus/any/drivers/pcieport"), &ctrl.join("driver"));
        std::fs::create_dir_all(s.sys().join("bus/any/drivers/pcieport")).unwrap();
        std::fs::remove_file(ctrl.join("uevent")).unwrap();
        let h = pick(&s.opts(ROOT_SDA2), &mut tree).unwrap();
        assert_eq!(picked(&h), ["sd_mod", "ext4"]);
        assert!(
            h.notes
                .iter()
                .any(|n| n
                    == "driver pcieport of /sys/devices/pci0000:00/0000:00:1f.2 is built into the kernel"),
            "{:?}",
            h.notes
        );
        // The same uevent too large: an error, not "built in".
        std::fs::write(ctrl.join("uevent"), "x".repeat(SYSFS_FILE_CAP as usize + 1)).unwrap();
        let e = pick(&s.opts(ROOT_SDA2), &mut tree).unwrap_err().to_string();
        assert!(e.ends_with("0000:00:1f.2/uevent: larger than the 65536-byte limit: refused"), "{e}");
    }

    /// A captured tree is resolved inside itself: a link that leads out
    /// of it (by `..` or to a host path) is never followed.
    #[test]
    fn links_out_of_a_captured_tree_are_not_followed() {
        let mut tree = tree();
        let s = FakeSys::new();
        ahci(&s);
        // A complete device outside the tree, beside it.
        let outside = s.t.path().join("outside/sda9");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("dev"), "8:2\n").unwrap();
        let err = |dev: &str, tree: &mut ModuleTree| {
            let mut o = s.opts(ROOT_SDA2);
            (o.root_device, o.root_fstype) = (Some(dev.into()), Some("ext4".into()));
            pick(&o, tree).unwrap_err().to_string()
        };
        // By `..`: refused.
        symlink("../../../outside/sda9", s.sys().join("class/block/sda9")).unwrap();
        let e = err("sda9", &mut tree);
        assert!(e.contains("/sys/class/block/sda9/dev: a symlink or `..` on the way leads out of "), "{e}");
        // By an absolute path: looked up inside the tree, where it leads to nothing.
        symlink(&outside, s.sys().join("class/block/sda8")).unwrap();
        let e = err("sda8", &mut tree);
        assert!(
            e.contains(&format!(
                "/sys/class/block/sda8: a symlink to {:?}, which leads to nothing inside ",
                outside.display().to_string()
            )),
            "{e}"
        );
        // The root device's own link, and a slave, out of the tree.
        symlink("../../../outside/sda9", s.sys().join("dev/block/8:9")).unwrap();
        let e = err("8:9", &mut tree);
        assert!(e.starts_with("host-only: no block device 8:9 in ") && e.contains("leads out of"), "{e}");
        dm_chain(&s, 0);
        let slaves = s.sys().join("devices/virtual/block/dm-0/slaves");
        std::fs::remove_file(slaves.join("sda2")).unwrap();
        symlink("../../../../../../outside/sda9", slaves.join("sda9")).unwrap();
        let e = pick(&s.opts(ROOT_DM0), &mut tree).unwrap_err().to_string();
        assert!(e.contains("dm-0/slaves/sda9: a symlink or `..` on the way leads out of "), "{e}");
    }

    #[test]
    fn mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    bad line\n\
                    22 1 8:2 / / rw shared:1 - ext4 /dev/sda2 rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(
            m,
            [
                MountLine {
                    devno: (98, 0),
                    point: "/mnt 2".into(),
                    fstype: "ext3".into(),
                    source: "/dev/root".into()
                },
                MountLine {
                    devno: (8, 2),
                    point: "/".into(),
                    fstype: "ext4".into(),
                    source: "/dev/sda2".into()
                },
            ]
        );
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("end\\04"), "end\\04");
        // Found by the mountinfo fuzz target: more than a byte overflowed.
        assert_eq!(unescape("a\\777b\\400"), "a\\777b\\400");
        assert_eq!(unescape("\\377"), "\u{fffd}");
    }
}
