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

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rootstock_core::errno::Errno;

use crate::modules::{ModError, ModuleTree, Resolved, alias_matches, normalize};

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
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
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

/// `MAJ:MIN` from a sysfs `dev` file.
fn read_devno(path: &Path) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (a, b) = text.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The device number of a `/dev/...` node (its `rdev`), else of the block
/// device of that name in sysfs.
fn devno_of_node(path: &str, sysfs: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if let Ok(md) = std::fs::metadata(path)
        && md.file_type().is_block_device()
    {
        let rdev = md.rdev();
        return Some((rustix::fs::major(rdev), rustix::fs::minor(rdev)));
    }
    let name = Path::new(path).file_name()?.to_str()?;
    read_devno(&sysfs.join("class/block").join(name).join("dev"))
}

/// The root device and its filesystem type, from the options or mountinfo.
fn root_device(opts: &HostOptions) -> Result<((u32, u32), String, String), HostError> {
    let mounts = || -> Result<Vec<MountLine>, HostError> {
        let text = std::fs::read_to_string(&opts.mountinfo)
            .map_err(|e| HostError::Read { path: opts.mountinfo.clone(), errno: Errno::from_io(&e) })?;
        Ok(parse_mountinfo(&text))
    };
    if let Some(dev) = &opts.root_device {
        let devno = if let Some((a, b)) = dev.split_once(':')
            && let (Ok(a), Ok(b)) = (a.parse(), b.parse())
        {
            (a, b)
        } else if dev.starts_with("/dev/") {
            devno_of_node(dev, &opts.sysfs).ok_or_else(|| HostError::BadDevice(dev.clone()))?
        } else if !dev.contains('/') && !dev.is_empty() {
            read_devno(&opts.sysfs.join("class/block").join(dev).join("dev"))
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
            devno_of_node(&m.source, &opts.sysfs)
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
    fn open(dir: &Path) -> Aliases {
        let table = std::fs::read_to_string(dir.join("modules.alias")).ok().map(|text| {
            text.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    (w.next()? == "alias").then_some(())?;
                    Some((w.next()?.to_string(), normalize(w.next()?)))
                })
                .collect()
        });
        Aliases { table }
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

/// The `MODALIAS=` of a device directory's `uevent`.
fn modalias(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("uevent")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MODALIAS="))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The last component of a symlink's target.
fn link_name(link: &Path) -> Option<String> {
    let target = std::fs::read_link(link).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

struct Walk<'a> {
    sysfs: &'a Path,
    devices: PathBuf,
    tree: &'a mut ModuleTree,
    aliases: Aliases,
    picks: Vec<Pick>,
    notes: Vec<String>,
    seen_dirs: BTreeSet<PathBuf>,
}

impl Walk<'_> {
    /// `path` as the machine names it (`/sys/devices/...`).
    fn show(&self, path: &Path) -> String {
        match path.strip_prefix(self.sysfs.canonicalize().unwrap_or(self.sysfs.to_path_buf())) {
            Ok(rel) => format!("/sys/{}", rel.display()),
            Err(_) => path.display().to_string(),
        }
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
            |why: String| HostError::NoDevice { devno: key.clone(), sysfs: self.sysfs.into(), why };
        let link = self.sysfs.join("dev/block").join(&key);
        let dir = link.canonicalize().map_err(|e| no_device(format!("{}: {e}", link.display())))?;
        if !dir.starts_with(&self.devices) {
            return Err(no_device(format!("{} is not under {}", dir.display(), self.devices.display())));
        }
        self.walk_block(&dir)?;
        Ok(dir)
    }

    fn walk_block(&mut self, dir: &Path) -> Result<(), HostError> {
        if !self.seen_dirs.insert(dir.to_path_buf()) {
            return Ok(());
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let disk = if dir.join("partition").is_file() { dir.parent().unwrap_or(dir) } else { dir };
        // A mapping or an array: what is below it, and its own modules.
        for d in [dir, disk] {
            self.stacked(d, &name)?;
        }
        // Every device above the disk.
        let mut cur = disk.parent();
        while let Some(d) = cur {
            if !d.starts_with(&self.devices) || d == self.devices {
                break;
            }
            self.driver_of(d)?;
            cur = d.parent();
        }
        Ok(())
    }

    /// A dm or md device: its modules, and each device in `slaves/`.
    fn stacked(&mut self, dir: &Path, name: &str) -> Result<(), HostError> {
        if dir.join("dm").is_dir() {
            let uuid = std::fs::read_to_string(dir.join("dm/uuid")).unwrap_or_default();
            self.add("dm_mod", format!("{name} is a device-mapper device"));
            if uuid.starts_with("CRYPT-VERITY-") {
                self.add("dm_verity", format!("{name} is a dm-verity mapping ({})", uuid.trim()));
            } else if uuid.starts_with("CRYPT-") {
                self.add("dm_crypt", format!("{name} is a dm-crypt mapping ({})", uuid.trim()));
            }
        }
        if dir.join("md").is_dir() {
            self.add("md_mod", format!("{name} is an md array"));
            let level = std::fs::read_to_string(dir.join("md/level")).unwrap_or_default();
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
        let Ok(slaves) = std::fs::read_dir(dir.join("slaves")) else { return Ok(()) };
        let mut below: Vec<PathBuf> = slaves.flatten().filter_map(|e| e.path().canonicalize().ok()).collect();
        below.sort();
        for b in below {
            if b.starts_with(&self.devices) {
                self.walk_block(&b)?;
            }
        }
        Ok(())
    }

    /// The module of the driver bound to the device at `dir`, if any.
    fn driver_of(&mut self, dir: &Path) -> Result<(), HostError> {
        let Some(driver) = link_name(&dir.join("driver")) else { return Ok(()) };
        let shown = self.show(dir);
        if let Some(module) = link_name(&dir.join("driver/module")) {
            self.add(&module, format!("driver {driver} of {shown}"));
            return Ok(());
        }
        // No module link: a built-in driver, or one whose bus does not make
        // the link (mmc). Then it is a module matching the device's
        // modalias that is loaded (in /sys/module), the one named as the
        // driver if there is one.
        let Some(alias) = modalias(dir) else {
            self.notes.push(format!("driver {driver} of {shown} is built into the kernel"));
            return Ok(());
        };
        let found = self.aliases.lookup(self.tree, &alias)?;
        let loaded: Vec<String> =
            found.into_iter().filter(|m| self.sysfs.join("module").join(m).is_dir()).collect();
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
    let (devno, fstype, source) = root_device(opts)?;
    let devices = opts.sysfs.join("devices");
    let devices = devices
        .canonicalize()
        .map_err(|e| HostError::Read { path: devices.clone(), errno: Errno::from_io(&e) })?;
    let aliases = Aliases::open(tree.dir());
    let mut walk = Walk {
        sysfs: &opts.sysfs,
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
                    let _ = symlink(&mdir, ddir.join("module"));
                }
                symlink(&ddir, dir.join("driver")).unwrap();
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
            symlink(&dir, self.sys().join("dev/block").join(devno)).unwrap();
            symlink(&dir, self.sys().join("class/block").join(name)).unwrap();
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
        symlink(s.sys().join("class/block/sda2").canonicalize().unwrap(), dm.join("slaves/sda2")).unwrap();
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
        std::fs::create_dir_all(s.t.path().join("elsewhere")).unwrap();
        symlink(s.t.path().join("elsewhere"), s.sys().join("dev/block/8:9")).unwrap();
        let e = err(s.opts("22 1 8:9 / / rw - ext4 /dev/x rw\n"), &mut tree);
        assert!(e.contains("is not under"), "{e}");
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
    }
}
