//! Loading kernel modules at boot (PID-1 mode): match the modaliases of the
//! devices in `/sys` against the index `mkinitramfs` wrote, dependencies
//! first, with `finit_module`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rootstock_core::errno::Errno;
use rootstock_core::modules::{self, INDEX_FILE, Index};

/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module itself.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

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

    /// The modules of the running kernel, `/lib/modules/$(uname -r)`.
    pub fn open_running_kernel() -> ModuleLoader {
        let uname = rustix::system::uname();
        let kver = uname.release().to_string_lossy().into_owned();
        ModuleLoader::open(&Path::new("/lib/modules").join(kver))
    }

    /// Modules loaded so far, in order.
    pub fn loaded(&self) -> &[String] {
        &self.loaded
    }

    /// Load the modules for devices under `sys_devices` whose modalias has
    /// not been seen before. Returns how many modules were loaded.
    pub fn load_for_devices(&mut self, sys_devices: &Path) -> usize {
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
        self.load_all(wanted)
    }

    /// Load a module (and its dependencies) by name or `fs-` alias, e.g. the
    /// root filesystem's type. Built-in or absent from the index is no error.
    pub fn load_named(&mut self, name: &str) -> usize {
        let Some(index) = &self.index else { return 0 };
        let wanted = modules::modules_named(&[name], index);
        self.load_all(wanted)
    }

    fn load_all(&mut self, names: Vec<String>) -> usize {
        let mut n = 0;
        for name in names {
            if !self.tried.insert(modules::normalize(&name)) {
                continue;
            }
            let Some(entry) = self.index.as_ref().and_then(|i| i.get(&name)) else { continue };
            let path = self.dir.join(&entry.path);
            match load_module(&path) {
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

fn load_module(path: &Path) -> Result<(), Errno> {
    let file = std::fs::File::open(path)?;
    let compressed = path.extension().is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
    let flags = if compressed { MODULE_INIT_COMPRESSED_FILE } else { 0 };
    rustix::system::finit_module(&file, c"", flags)?;
    Ok(())
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
mod tests {
    use super::*;
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
        assert_eq!(l.load_named("ext4"), 0);
        assert_eq!(l.load_for_devices(t.path()), 0);
        assert!(l.loaded().is_empty());
    }
}
