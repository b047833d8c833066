//! Loading kernel modules at boot (PID-1 mode): match the modaliases of the
//! devices in `/sys` against the index `mkinitramfs` wrote, dependencies
//! first, with `finit_module` (through the seam).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rootstock_core::errno::Errno;
use rootstock_core::modules::{self, INDEX_FILE, Index};
use rootstock_core::seam::{Op, System};

pub struct ModuleLoader {
    dir: PathBuf,
    index: Option<Index>,
    /// Modaliases already looked at.
    seen: BTreeSet<String>,
    /// Modules already tried (loaded or failed), by normalised name.
    tried: BTreeSet<String>,
    loaded: Vec<String>,
}

impl ModuleLoader {
    /// The modules of `dir` (`/lib/modules/$kver`) as indexed by mkinitramfs.
    /// Without an index there is nothing to load: every driver is built in.
    pub fn open(dir: &Path) -> ModuleLoader {
        let index = match std::fs::read_to_string(dir.join(INDEX_FILE)) {
            Ok(text) => match Index::parse(&text) {
                Ok(i) => Some(i),
                Err(e) => {
                    log::error!("{}: {e}; loading no modules", dir.join(INDEX_FILE).display());
                    None
                }
            },
            Err(e) => {
                log::info!("no module index {}: {e}", dir.join(INDEX_FILE).display());
                None
            }
        };
        ModuleLoader {
            dir: dir.to_path_buf(),
            index,
            seen: BTreeSet::new(),
            tried: BTreeSet::new(),
            loaded: vec![],
        }
    }

    /// Modules loaded so far, in order.
    pub fn loaded(&self) -> &[String] {
        &self.loaded
    }

    /// Load the modules for the devices on the buses of `sysfs` (mounted
    /// sysfs, e.g. /sys) whose modalias has not been seen before. Returns how
    /// many modules were loaded.
    pub fn load_for_devices(&mut self, sys: &mut dyn System, sysfs: &Path) -> usize {
        let Some(index) = &self.index else { return 0 };
        let mut fresh = Vec::new();
        collect_modaliases(sysfs, &mut |alias| {
            if !self.seen.contains(&alias) {
                fresh.push(alias);
            }
        });
        if fresh.is_empty() {
            return 0;
        }
        self.seen.extend(fresh.iter().cloned());
        let wanted = modules::modules_for(&fresh, index);
        self.load_all(sys, wanted)
    }

    /// Load a module (and its dependencies) by name or `fs-` alias, e.g. the
    /// root filesystem's type. Built-in or absent from the index is no error.
    pub fn load_named(&mut self, sys: &mut dyn System, name: &str) -> usize {
        let Some(index) = &self.index else { return 0 };
        let wanted = modules::modules_named(&[name], index);
        self.load_all(sys, wanted)
    }

    fn load_all(&mut self, sys: &mut dyn System, names: Vec<String>) -> usize {
        let mut n = 0;
        for name in names {
            if !self.tried.insert(modules::normalize(&name)) {
                continue;
            }
            let Some(entry) = self.index.as_ref().and_then(|i| i.get(&name)) else { continue };
            let path = self.dir.join(&entry.path);
            let compressed = path.extension().is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
            match sys.execute(&Op::LoadModule { path: path.clone(), compressed }) {
                Ok(()) => {
                    log::debug!("loaded {name}");
                    self.loaded.push(name);
                    n += 1;
                }
                // EEXIST: already loaded (or built in under that name).
                Err(Errno::EXIST) => {}
                // ENODEV: nothing here for it to drive, e.g. crc32c_intel on a
                // CPU without SSE4.2 (QEMU's TCG): the generic module it stands
                // beside does the job. Normal, so not a warning on every boot.
                Err(errno @ Errno::NODEV) => log::info!("not loading {name}: {errno}: no hardware for it"),
                Err(errno) => log::warn!("could not load {name} ({}): {errno}", path.display()),
            }
        }
        n
    }
}

/// The modalias of every device on a bus: `<sysfs>/bus/*/devices/*/modalias`.
/// A modalias is a bus's attribute, so every device that has one is on a
/// bus, and the bus lists are flat: a few hundred reads. Walking the whole
/// `/sys/devices` tree instead (every device's `power/` and other attribute
/// directories) took about 100 ms per round under QEMU's emulation, twice
/// per boot: most of what rootstock spent over a hand-written init.
fn collect_modaliases(sysfs: &Path, found: &mut dyn FnMut(String)) {
    let Ok(buses) = std::fs::read_dir(sysfs.join("bus")) else { return };
    for bus in buses.flatten() {
        let Ok(devices) = std::fs::read_dir(bus.path().join("devices")) else { continue };
        for dev in devices.flatten() {
            if let Ok(text) = std::fs::read_to_string(dev.path().join("modalias"))
                && !text.trim().is_empty()
            {
                found(text.trim().to_string());
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rootstock_core::seam::fake::{Call, Recorder};
    use rootstock_core::testutil::TempDir;

    /// A fake sysfs: devices in their tree, linked from their buses.
    pub(crate) fn fake_sysfs(sysfs: &Path, devices: &[(&str, &str, &str)]) {
        for (bus, dev, alias) in devices {
            let dir = sysfs.join("devices").join(dev);
            std::fs::create_dir_all(dir.join("power")).unwrap();
            std::fs::write(dir.join("modalias"), format!("{alias}\n")).unwrap();
            let link = sysfs.join("bus").join(bus).join("devices");
            std::fs::create_dir_all(&link).unwrap();
            let name = Path::new(dev).file_name().unwrap();
            std::os::unix::fs::symlink(format!("../../../devices/{dev}"), link.join(name)).unwrap();
        }
    }

    #[test]
    fn finds_the_modaliases_of_the_devices_on_buses() {
        let t = TempDir::new();
        let d = t.path();
        fake_sysfs(
            d,
            &[
                ("pci", "pci0000:00/0000:00:04.0", "pci:v00001AF4d00001001"),
                ("virtio", "pci0000:00/0000:00:04.0/virtio1", "virtio:d00000002v00001AF4"),
            ],
        );
        // Not on a bus, or no modalias: not looked at.
        std::fs::create_dir_all(d.join("devices/virtual/block/loop0")).unwrap();
        std::fs::write(d.join("devices/virtual/block/loop0/modalias"), "block:x\n").unwrap();
        std::fs::create_dir_all(d.join("bus/platform/devices/serial8250")).unwrap();
        std::fs::create_dir_all(d.join("bus/empty")).unwrap();
        let mut got = Vec::new();
        collect_modaliases(d, &mut |a| got.push(a));
        got.sort();
        assert_eq!(got, vec!["pci:v00001AF4d00001001", "virtio:d00000002v00001AF4"]);
    }

    #[test]
    fn without_an_index_nothing_is_loaded() {
        let t = TempDir::new();
        let mut l = ModuleLoader::open(t.path());
        let mut r = Recorder::new();
        assert_eq!(l.load_named(&mut r, "ext4"), 0);
        assert_eq!(l.load_for_devices(&mut r, t.path()), 0);
        assert!(l.loaded().is_empty());
        assert!(r.calls.is_empty());
    }

    /// An index of three modules: a virtio disk driver, ext4 (`fs-ext4`)
    /// and crc16, which ext4 needs.
    pub(crate) fn index(kver: &str) -> String {
        let ext = ".ko";
        format!(
            "rootstock-modules 1 {kver}\n\
             crc16\tkernel/lib/crc16{ext}\t\t\t\t\n\
             ext4\tkernel/fs/ext4/ext4{ext}\tcrc16\t\t\tfs-ext4\n\
             virtio_blk\tkernel/drivers/block/virtio_blk{ext}\t\t\t\tvirtio:d00000002v*\n"
        )
    }

    #[test]
    fn modules_load_dependencies_first_once_each_failures_go_on() {
        let t = TempDir::new();
        let dir = t.path().join("lib/modules/6.1.0-t");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(INDEX_FILE), index("6.1.0-t")).unwrap();
        let devices = t.path().join("sys");
        fake_sysfs(&devices, &[("virtio", "virtio1", "virtio:d00000002v00001AF4")]);
        let load = |m: &str| Op::LoadModule { path: dir.join(m), compressed: false };

        // crc16 is refused (EIO), virtio_blk and ext4 load, each once.
        let mut r = Recorder::failing_on(
            |c| matches!(c, Call::Op(Op::LoadModule { path, .. }) if path.ends_with("crc16.ko")),
            Errno::IO,
        );
        let mut l = ModuleLoader::open(&dir);
        assert_eq!(l.load_for_devices(&mut r, &devices), 1);
        assert_eq!(l.load_for_devices(&mut r, &devices), 0, "a modalias seen is not looked at again");
        assert_eq!(l.load_named(&mut r, "ext4"), 1);
        assert_eq!(l.load_named(&mut r, "fs-ext4"), 0, "tried once, by any name");
        assert_eq!(l.loaded(), ["virtio_blk", "ext4"]);
        let ops: Vec<Op> = r.operations().cloned().collect();
        assert_eq!(
            ops,
            [
                load("kernel/drivers/block/virtio_blk.ko"),
                load("kernel/lib/crc16.ko"),
                load("kernel/fs/ext4/ext4.ko")
            ]
        );
    }
}
