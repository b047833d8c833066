#![no_main]
//! The host-only walker (`mkinitramfs --host`, `hostonly::pick`) over a
//! small sysfs tree the input lays out in a temporary directory:
//! directories, files, FIFOs, and symlinks (relative, absolute, climbing
//! with `..`, to `/dev/zero`), then a mount table naming a root device.
//! It must return (a pick or an error), never panic or hang.
//!
//! The tree is made without following any symlink it holds: every path
//! made is checked against what was made before, so a symlink to `/` can
//! never make the generator write outside the temporary directory.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use rootstock::hostonly::{HostOptions, pick};
use rootstock::modules::ModuleTree;

const NAMES: [&str; 24] = [
    "devices",
    "dev",
    "block",
    "class",
    "virtual",
    "8:2",
    "253:0",
    "sda",
    "sda2",
    "dm-0",
    "dm",
    "md",
    "slaves",
    "uuid",
    "level",
    "uevent",
    "driver",
    "module",
    "partition",
    "bus",
    "ahci",
    "pci0000:00",
    "x",
    "..",
];

const TEXTS: [&str; 8] = [
    "8:2\n",
    "253:0\n",
    "CRYPT-LUKS2-0123-root\n",
    "CRYPT-VERITY-0123-root\n",
    "raid5\n",
    "DRIVER=ahci\nMODALIAS=pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\n",
    "1\n",
    "",
];

const MOUNTS: [&str; 4] = [
    "22 1 8:2 / / rw - ext4 /dev/sda2 rw\n",
    "22 1 253:0 / / rw - ext4 /dev/mapper/root rw\n",
    "25 1 0:31 /@ / rw - btrfs /dev/sda2 rw\n",
    "40 1 0:40 / / ro - overlay overlay ro\n41 40 8:2 / /sysroot ro - xfs /dev/sda2 ro\n",
];

/// A directory of this process, removed on drop (without following the
/// symlinks in it).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A tmpfs when there is one: on a disk, making and removing the
        // tree is most of the time of a run.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let p = base.join(format!("rootstock-fuzz-hostonly-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Made {
    Dir,
    Other,
}

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    /// 1 to 4 names; `..` only when `dots`.
    fn path(&mut self, dots: bool) -> Option<PathBuf> {
        let n = self.byte()? % 4 + 1;
        let mut p = PathBuf::new();
        for _ in 0..n {
            let name = NAMES[usize::from(self.byte()?) % NAMES.len()];
            if name == ".." && !dots {
                p.push("x");
            } else {
                p.push(name);
            }
        }
        Some(p)
    }
}

/// Can `rel` be made: every prefix made so far is a real directory, and
/// `rel` itself is not made yet?
fn free(made: &BTreeMap<PathBuf, Made>, rel: &Path) -> bool {
    let mut at = PathBuf::new();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        at.push(c);
        match made.get(&at) {
            Some(Made::Dir) if i + 1 < comps.len() => {}
            Some(_) => return false,
            None => return true,
        }
    }
    false
}

/// Make every missing parent of `rel` (inside `sys`) as a directory.
fn parents(sys: &Path, made: &mut BTreeMap<PathBuf, Made>, rel: &Path) {
    let mut at = PathBuf::new();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            at.push(c);
            if !made.contains_key(&at) && std::fs::create_dir(sys.join(&at)).is_ok() {
                made.insert(at.clone(), Made::Dir);
            }
        }
    }
}

/// A module tree for kernel `6.1.0-fuzz` in `dir`: the AHCI alias, dm_mod
/// built in.
fn modules(dir: &Path) -> Option<ModuleTree> {
    let m = dir.join("6.1.0-fuzz");
    std::fs::create_dir_all(&m).ok()?;
    std::fs::write(m.join("modules.alias"), "alias pci:v00008086d00002922sv*sd*bc01sc06i01* ahci\n").ok()?;
    std::fs::write(m.join("modules.builtin"), "kernel/drivers/md/dm-mod.ko\n").ok()?;
    ModuleTree::open(&m, "6.1.0-fuzz").ok()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let t = TempDir::new();
    let sys = t.path().join("sys");
    std::fs::create_dir(&sys).unwrap();
    let mut made: BTreeMap<PathBuf, Made> = BTreeMap::new();
    let mount = MOUNTS[usize::from(input.byte().unwrap_or(0)) % MOUNTS.len()];
    let root_device = match input.byte().unwrap_or(0) % 4 {
        0 => Some("sda2".to_string()),
        1 => Some("/dev/sda2".to_string()),
        _ => None,
    };
    for _ in 0..48 {
        let Some(op) = input.byte() else { break };
        let Some(rel) = input.path(false) else { break };
        if !free(&made, &rel) {
            continue;
        }
        parents(&sys, &mut made, &rel);
        let at = sys.join(&rel);
        let ok = match op % 6 {
            0 => std::fs::create_dir(&at).is_ok().then_some(Made::Dir),
            1 | 2 => {
                let text = TEXTS[usize::from(input.byte().unwrap_or(0)) % TEXTS.len()];
                std::fs::write(&at, text).is_ok().then_some(Made::Other)
            }
            3 => {
                let Some(target) = input.path(true) else { break };
                let abs = input.byte().unwrap_or(0) % 4 == 0;
                let target = if abs { Path::new("/").join(target) } else { target };
                std::os::unix::fs::symlink(target, &at).is_ok().then_some(Made::Other)
            }
            4 => std::os::unix::fs::symlink("/dev/zero", &at).is_ok().then_some(Made::Other),
            _ => rustix::fs::mknodat(rustix::fs::CWD, &at, rustix::fs::FileType::Fifo, 0o600.into(), 0)
                .is_ok()
                .then_some(Made::Other),
        };
        if let Some(kind) = ok {
            made.insert(rel, kind);
        }
    }
    let mountinfo = t.path().join("mountinfo");
    std::fs::write(&mountinfo, mount).unwrap();
    let Some(mut modules) = modules(&t.path().join("modules")) else { return };
    let opts = HostOptions { sysfs: sys, mountinfo, root_device, root_fstype: Some("ext4".into()) };
    if let Ok(h) = pick(&opts, &mut modules) {
        let _ = h.describe();
    }
});
