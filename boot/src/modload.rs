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

    /// Load the modules for devices under `sys_devices` whose modalias has
    /// not been seen before. Returns how many modules were loaded.
    pub fn load_for_devices(&mut self, sys: &mut dyn System, sys_devices: &Path) -> usize {
        let Some(index) = &self.index else { return 0 };
        let mut fresh = Vec::new();
        collect_modaliases(sys_devices, &mut |alias| {
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

/// Every `modalias` file below `dir`, without following symlinks (sysfs's
/// `/sys/devices` is a tree; its symlinks point across it).
fn collect_modaliases(dir: &Path, found: &mut dyn FnMut(String)) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_modaliases(&e.path(), found);
        } else if ft.is_file()
            && e.file_name() == "modalias"
            && let Ok(text) = std::fs::read_to_string(e.path())
            && !text.trim().is_empty()
        {
            found(text.trim().to_string());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rootstock_core::seam::fake::{Call, Recorder};
    use rootstock_core::testutil::TempDir;

    #[test]
    fn finds_modaliases_without_following_symlinks() {
        let t = TempDir::new();
        let d = t.path();
        std::fs::create_dir_all(d.join("pci0000:00/0000:00:04.0/virtio1")).unwrap();
        std::fs::write(d.join("pci0000:00/0000:00:04.0/modalias"), "pci:v00001AF4d00001001\n").unwrap();
        std::fs::write(d.join("pci0000:00/0000:00:04.0/virtio1/modalias"), "virtio:d00000002v00001AF4\n")
            .unwrap();
        std::fs::write(d.join("pci0000:00/0000:00:04.0/virtio1/uevent"), "x").unwrap();
        std::os::unix::fs::symlink("../..", d.join("pci0000:00/0000:00:04.0/virtio1/loop")).unwrap();
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
        let devices = t.path().join("devices");
        std::fs::create_dir_all(devices.join("virtio1")).unwrap();
        std::fs::write(devices.join("virtio1/modalias"), "virtio:d00000002v00001AF4\n").unwrap();
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
