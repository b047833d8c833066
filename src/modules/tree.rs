//! The modules of one kernel on the host, e.g. `/lib/modules/6.1.0-56-amd64`:
//! module files, built-in modules, and names resolved as modprobe does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rootstock_core::errno::Errno;
use rootstock_core::modules::order::{Edges, load_order};

use rootstock_core::modules::{IndexEntry, IndexError, alias_matches, normalize};

use super::error::ModError;
use super::modinfo::{ModInfo, module_stem};
use super::read::read_module;

/// What a requested name is in a kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Module files (normalised names); several when an alias matches many.
    Modules(Vec<String>),
    BuiltIn,
    NotFound,
}

/// The modules of one kernel, e.g. `/lib/modules/6.1.0-56-amd64`: every
/// module file found under it, and `modules.builtin` (+ `.modinfo`). ELF is
/// read only for the modules asked about, except when a name has to be
/// looked up among all aliases.
pub struct ModuleTree {
    dir: PathBuf,
    kver: String,
    /// normalised name → path relative to `dir`.
    files: BTreeMap<String, String>,
    builtin: BTreeSet<String>,
    /// Aliases of built-in modules, from `modules.builtin.modinfo`.
    builtin_aliases: Vec<String>,
    infos: BTreeMap<String, ModInfo>,
    all_aliases: Option<Vec<(String, String)>>,
}

impl ModuleTree {
    /// Index the module files under `dir` (which is `<modules>/<kver>`).
    pub fn open(dir: &Path, kver: &str) -> Result<ModuleTree, ModError> {
        let io =
            |path: &Path, e: std::io::Error| ModError::Io { path: path.into(), errno: Errno::from_io(&e) };
        std::fs::read_dir(dir).map_err(|e| ModError::NoKernel {
            dir: dir.into(),
            kver: kver.into(),
            errno: Errno::from_io(&e),
        })?;
        let mut paths = Vec::new();
        let mut todo = vec![PathBuf::new()];
        while let Some(rel) = todo.pop() {
            let abs = dir.join(&rel);
            for entry in std::fs::read_dir(&abs).map_err(|e| io(&abs, e))? {
                let entry = entry.map_err(|e| io(&abs, e))?;
                let rel = rel.join(entry.file_name());
                let ty = entry.file_type().map_err(|e| io(&entry.path(), e))?;
                // Directory symlinks (build/, source/) are not followed;
                // file symlinks (weak-updates/) are.
                if ty.is_dir() {
                    todo.push(rel);
                } else if module_stem(&rel).is_some() && entry.path().is_file() {
                    paths.push(rel);
                }
            }
        }
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        for rel in paths {
            let (Some(stem), Some(rel_str)) = (module_stem(&rel), rel.to_str()) else { continue };
            let name = normalize(stem);
            let better = match files.get(&name) {
                None => true,
                Some(old) => (priority(rel_str), rel_str) < (priority(old), old.as_str()),
            };
            if better {
                files.insert(name, rel_str.to_string());
            }
        }
        let read_optional = |name: &str| -> Result<Vec<u8>, ModError> {
            let path = dir.join(name);
            // O_NONBLOCK, regular, capped (64 MiB, far above any kernel's).
            match rootstock_core::confine::read_file(&path, 64 << 20) {
                Ok(b) => Ok(b),
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                Err(e) => Err(ModError::Read(e)),
            }
        };
        let builtin = String::from_utf8_lossy(&read_optional("modules.builtin")?)
            .lines()
            .filter_map(|l| module_stem(Path::new(l.trim())).map(normalize))
            .collect();
        // "name.key=value" records, NUL-separated.
        let builtin_aliases = read_optional("modules.builtin.modinfo")?
            .split(|&b| b == 0)
            .filter_map(|r| {
                let r = String::from_utf8_lossy(r);
                let (_, kv) = r.split_once('.')?;
                kv.strip_prefix("alias=").map(str::to_string)
            })
            .collect();
        Ok(ModuleTree {
            dir: dir.into(),
            kver: kver.into(),
            files,
            builtin,
            builtin_aliases,
            infos: BTreeMap::new(),
            all_aliases: None,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kernel version the modules are for.
    pub fn kver(&self) -> &str {
        &self.kver
    }

    /// Every module name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The file of module `name`, relative to [`Self::dir`].
    pub fn path(&self, name: &str) -> Option<&str> {
        self.files.get(&normalize(name)).map(String::as_str)
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// The machine the modules are built for, from the ELF header of the
    /// first module file that reads as one (None when none does). A damaged
    /// module is skipped here: it is an error only when it is asked for.
    pub fn machine(&self) -> Option<crate::arch::Machine> {
        self.files.values().find_map(|rel| {
            let (bytes, _) = read_module(&self.dir.join(rel)).ok()?;
            crate::arch::Machine::of_elf(&bytes)
        })
    }

    /// Read (once) the `.modinfo` of module `name`, checking its vermagic.
    pub fn info(&mut self, name: &str) -> Result<&ModInfo, ModError> {
        let name = normalize(name);
        if !self.infos.contains_key(&name) {
            let rel = self
                .files
                .get(&name)
                .ok_or_else(|| ModError::NotFound { name: name.clone(), dir: self.dir.clone() })?;
            let path = self.dir.join(rel);
            let (_, info) = read_module(&path)?;
            self.check_vermagic(&path, &info)?;
            self.infos.insert(name.clone(), info);
        }
        self.infos.get(&name).ok_or(ModError::NotFound { name, dir: self.dir.clone() })
    }

    fn check_vermagic(&self, path: &Path, info: &ModInfo) -> Result<(), ModError> {
        match &info.vermagic {
            Some(v) if v.split_whitespace().next() != Some(self.kver.as_str()) => {
                Err(ModError::WrongKernel { path: path.into(), vermagic: v.clone(), kver: self.kver.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Resolve a name as modprobe would: a module file, a built-in module,
    /// or else an alias (of built-in modules first, then of every module).
    pub fn resolve(&mut self, name: &str) -> Result<Resolved, ModError> {
        let norm = normalize(name);
        if self.files.contains_key(&norm) {
            return Ok(Resolved::Modules(vec![norm]));
        }
        if self.builtin.contains(&norm) || self.builtin_aliases.iter().any(|a| alias_matches(a, name)) {
            return Ok(Resolved::BuiltIn);
        }
        let all = self.all_aliases();
        let mut found: Vec<String> =
            all.iter().filter(|(pattern, _)| alias_matches(pattern, name)).map(|(_, m)| m.clone()).collect();
        found.sort();
        found.dedup();
        Ok(if found.is_empty() { Resolved::NotFound } else { Resolved::Modules(found) })
    }

    /// (alias pattern, module) of every module: reads every module once.
    /// A module that cannot be read is left out with a warning: it is not
    /// one that was asked for.
    fn all_aliases(&mut self) -> &Vec<(String, String)> {
        if self.all_aliases.is_none() {
            // Reading (decompressing) thousands of modules is most of what
            // mkinitramfs spends on an xz-compressed tree: spread over the
            // cores; the result is the same in any case.
            let todo: Vec<(String, PathBuf)> = (self.files.iter())
                .filter(|(name, _)| !self.infos.contains_key(*name))
                .map(|(name, rel)| (name.clone(), self.dir.join(rel)))
                .collect();
            for ((name, path), read) in todo.iter().zip(read_infos(&todo)) {
                match read.and_then(|info| self.check_vermagic(path, &info).map(|()| info)) {
                    Ok(info) => {
                        self.infos.insert(name.clone(), info);
                    }
                    Err(e) => log::warn!("skipping while looking up aliases: {e}"),
                }
            }
            let mut all = Vec::new();
            for name in self.files.keys() {
                if let Some(info) = self.infos.get(name) {
                    all.extend(info.aliases.iter().map(|a| (a.clone(), name.clone())));
                }
            }
            self.all_aliases = Some(all);
        }
        self.all_aliases.get_or_insert_default()
    }

    /// Softdep names resolved to module files; built-in or unknown ones
    /// are dropped (modprobe does not fail on them either).
    fn resolve_soft(&mut self, names: &[String], of: &str) -> Result<Vec<String>, ModError> {
        let mut out = Vec::new();
        for n in names {
            match self.resolve(n)? {
                Resolved::Modules(m) => out.extend(m),
                Resolved::BuiltIn => {}
                Resolved::NotFound => log::debug!("module {of}: softdep {n} not found, ignored"),
            }
        }
        Ok(out)
    }

    /// `roots` (module names) and everything they need, dependencies first.
    pub fn closure(&mut self, roots: &[String]) -> Result<Vec<String>, ModError> {
        let roots: Vec<String> = roots.iter().map(|r| normalize(r)).collect();
        load_order(&roots, |name| {
            let info = self.info(name)?.clone();
            for d in &info.depends {
                if !self.files.contains_key(d) && !self.builtin.contains(d) {
                    return Err(
                        IndexError::MissingDependency { module: name.into(), needs: d.clone() }.into()
                    );
                }
            }
            let hard = info.depends.iter().filter(|d| self.files.contains_key(*d)).cloned().collect();
            let soft_pre = self.resolve_soft(&info.softdep_pre, name)?;
            let soft_post = self.resolve_soft(&info.softdep_post, name)?;
            Ok(Edges { hard, soft_pre, soft_post })
        })
    }

    /// The index entry of module `name` (its info must have been read,
    /// e.g. by [`Self::closure`]). Softdeps are kept only when they resolve
    /// to modules in `included`.
    pub fn index_entry(&mut self, name: &str, included: &BTreeSet<String>) -> Result<IndexEntry, ModError> {
        let info = self.info(name)?.clone();
        // Each softdep once, and not when it is a hard dependency already.
        let keep = |tree: &mut ModuleTree, names: &[String]| -> Result<Vec<String>, ModError> {
            let mut seen: BTreeSet<String> = info.depends.iter().cloned().collect();
            seen.insert(info.name.clone());
            let mut v = tree.resolve_soft(names, name)?;
            v.retain(|m| included.contains(m) && seen.insert(m.clone()));
            Ok(v)
        };
        let softdep_pre = keep(self, &info.softdep_pre)?;
        let softdep_post = keep(self, &info.softdep_post)?;
        let rel = self.path(name).unwrap_or("");
        let path = [".xz", ".zst", ".gz"].iter().find_map(|ext| rel.strip_suffix(ext)).unwrap_or(rel);
        Ok(IndexEntry {
            name: info.name.clone(),
            path: path.to_string(),
            depends: info.depends.iter().filter(|d| included.contains(*d)).cloned().collect(),
            softdep_pre,
            softdep_post,
            aliases: info.aliases.iter().filter(|a| !a.contains(['\t', '\n', '\r'])).cloned().collect(),
        })
    }
}

/// depmod's search order: updates/ first, then extra/, then the rest.
fn priority(rel: &str) -> u8 {
    if rel.starts_with("updates/") {
        0
    } else if rel.starts_with("extra/") {
        1
    } else {
        2
    }
}
/// The `.modinfo` of each module file of `todo`, in its order, read by as
/// many threads as there are cores (at most 8).
fn read_infos(todo: &[(String, PathBuf)]) -> Vec<Result<ModInfo, ModError>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
    let chunk = todo.len().div_ceil(threads).max(1);
    let read = |part: &[(String, PathBuf)]| -> Vec<Result<ModInfo, ModError>> {
        part.iter().map(|(_, path)| read_module(path).map(|(_, info)| info)).collect()
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = todo.chunks(chunk).map(|part| (part, s.spawn(move || read(part)))).collect();
        // A reader that panicked (it should not): its part is read here.
        handles.into_iter().flat_map(|(part, h)| h.join().unwrap_or_else(|_| read(part))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::Index;
    use crate::modules::test_support::{fake_elf, modules_dir, strings};
    use rootstock_core::modules::{modules_for, modules_named};

    /// A module tree of fake modules in a temporary directory.
    fn fake_tree(tag: &str, modules: &[(&str, &str)], builtin: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rootstock-modules-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        for (file, modinfo) in modules {
            let path = dir.join("kernel").join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let bytes = if let Some(raw) = modinfo.strip_prefix("RAW:") {
                raw.as_bytes().to_vec()
            } else {
                fake_elf(&[(".modinfo", modinfo.replace(';', "\0").as_bytes())])
            };
            std::fs::write(path, bytes).unwrap();
        }
        std::fs::write(dir.join("modules.builtin"), builtin).unwrap();
        dir
    }

    #[test]
    fn a_fifo_as_modules_builtin_is_an_error_not_a_hang() {
        let dir = fake_tree("fifo", &[("a.ko", "name=a")], "");
        std::fs::remove_file(dir.join("modules.builtin")).unwrap();
        let ok = std::process::Command::new("mkfifo").arg(dir.join("modules.builtin")).status().unwrap();
        assert!(ok.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.clone();
        std::thread::spawn(move || tx.send(ModuleTree::open(&d, "6.1.0-test").err().map(|e| e.to_string())));
        let err = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("hung on a FIFO");
        let err = err.expect("a FIFO is an error");
        assert!(
            err.contains("modules.builtin") && err.contains("not a regular file (a FIFO): refused"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The machine comes from the first module that reads as ELF: a damaged
    /// module that nobody asks for (sorted first here) does not stop it.
    #[test]
    fn the_machine_skips_a_damaged_module() {
        let dir = fake_tree("machine", &[("aaa.ko", "RAW:just text"), ("b.ko", "name=b")], "");
        let tree = ModuleTree::open(&dir, "6.1.0-test").unwrap();
        assert_eq!(tree.machine(), Some(crate::arch::Machine::X86_64));
        let none = fake_tree("machine-none", &[("aaa.ko", "RAW:just text")], "");
        assert_eq!(ModuleTree::open(&none, "6.1.0-test").unwrap().machine(), None);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&none);
    }

    #[test]
    fn tree_errors() {
        let dir = fake_tree(
            "errors",
            &[
                ("a.ko", "name=a;depends=b"),
                ("b.ko", "name=b;depends=c"),
                ("c.ko", "name=c;depends=a"),
                ("text.ko", "RAW:just text"),
                ("noinfo.ko", "RAW:\x7fELF"),
                ("lost.ko", "name=lost;depends=nowhere"),
                ("old.ko", "name=old;vermagic=5.10.0-1-amd64 SMP"),
                ("usesbuiltin.ko", "name=usesbuiltin;depends=ext4;softdep=pre: nothing-like-this"),
                ("sub/dash-name.ko", "depends="),
            ],
            "kernel/fs/ext4/ext4.ko\n",
        );
        let mut tree = ModuleTree::open(&dir, "6.1.0-test").unwrap();
        let cases: &[(&str, &str)] = &[
            ("a", "module dependency cycle: a -> b -> c -> a"),
            ("text", "text.ko: not a kernel module (not an ELF file"),
            ("noinfo", "noinfo.ko: not a kernel module (not an ELF file"),
            ("lost", "module lost depends on nowhere, which is missing"),
            ("old", "old.ko: built for kernel \"5.10.0-1-amd64 SMP\", not 6.1.0-test"),
            ("nosuch", "module nosuch: neither a module file under"),
        ];
        for (root, want) in cases {
            let err = tree.closure(&[root.to_string()]).unwrap_err().to_string();
            assert!(err.contains(want), "{root}: {err}");
        }
        assert_eq!(
            tree.closure(&strings(&["usesbuiltin", "dash_name"])).unwrap(),
            ["usesbuiltin", "dash_name"]
        );
        assert_eq!(tree.path("dash-name"), Some("kernel/sub/dash-name.ko"));
        assert!(tree.is_builtin("ext4"));
        assert_eq!(tree.resolve("ext4").unwrap(), Resolved::BuiltIn);
        assert_eq!(tree.resolve("nothing").unwrap(), Resolved::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // The real Debian kernel.

    #[test]
    fn real_modules_in_dependency_order() {
        let (dir, kver) = modules_dir();
        let mut tree = ModuleTree::open(&dir, &kver).unwrap();
        assert!(tree.names().count() > 3000, "{} modules", tree.names().count());
        let info = tree.info("virtio_blk").unwrap().clone();
        assert_eq!(info.name, "virtio_blk");
        assert_eq!(info.depends, ["virtio", "virtio_ring"]);
        assert_eq!(info.aliases, ["virtio:d00000002v*"]);
        let ext4 = tree.info("ext4").unwrap().clone();
        assert_eq!(ext4.depends, ["jbd2", "mbcache", "crc16"]);
        assert!(ext4.aliases.contains(&"fs-ext4".to_string()));
        assert_eq!(tree.info("usb-storage").unwrap().name, "usb_storage");

        let order = tree.closure(&strings(&["ext4"])).unwrap();
        let pos =
            |m: &str| order.iter().position(|x| x == m).unwrap_or_else(|| panic!("{m} not in {order:?}"));
        for dep in ["jbd2", "mbcache", "crc16"] {
            assert!(pos(dep) < pos("ext4"), "{order:?}");
        }
        // jbd2's softdep=pre: crypto-crc32c resolves by alias to both crc32c modules.
        assert!(pos("crc32c_generic") < pos("jbd2") && pos("crc32c_intel") < pos("jbd2"), "{order:?}");
        assert_eq!(order.last().map(String::as_str), Some("ext4"));

        let order =
            tree.closure(&strings(&["virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "xfs"])).unwrap();
        for (before, after) in [
            ("virtio", "virtio_pci"),
            ("virtio_ring", "virtio_pci"),
            ("virtio_pci_modern_dev", "virtio_pci"),
            ("virtio_ring", "virtio_blk"),
            ("scsi_mod", "virtio_scsi"),
            ("scsi_common", "sd_mod"),
            ("libcrc32c", "xfs"),
        ] {
            let (b, a) = (order.iter().position(|x| x == before), order.iter().position(|x| x == after));
            assert!(b.is_some() && b < a, "{before} before {after}: {order:?}");
        }
        let unique: BTreeSet<&String> = order.iter().collect();
        assert_eq!(unique.len(), order.len());
    }

    #[test]
    fn real_aliases_select_drivers() {
        let (dir, kver) = modules_dir();
        let mut tree = ModuleTree::open(&dir, &kver).unwrap();
        let roots = strings(&["virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ahci", "nvme", "ext4"]);
        let order = tree.closure(&roots).unwrap();
        let included: BTreeSet<String> = order.iter().cloned().collect();
        let entries =
            order.iter().map(|m| tree.index_entry(m, &included)).collect::<Result<Vec<_>, _>>().unwrap();
        let index = Index::parse(&Index::new(&kver, entries).unwrap().render()).unwrap();
        // crc64_rocksoft: depends=crc64 and softdep=pre: crc64; t10_pi pulls it in.
        let rocksoft = index.get("crc64_rocksoft").unwrap();
        assert_eq!((&rocksoft.depends[..], &rocksoft.softdep_pre[..]), (&["crc64".to_string()][..], &[][..]));
        for e in index.entries() {
            assert!(e.softdep_pre.iter().all(|s| !e.depends.contains(s) && *s != e.name), "{e:?}");
        }
        // (modalias, the driver, some of its dependencies)
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            ("virtio:d00000002v00001AF4", Some("virtio_blk"), &["virtio", "virtio_ring"]),
            ("virtio:d00000008v00001AF4", Some("virtio_scsi"), &["scsi_mod", "virtio", "virtio_ring"]),
            (
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
                Some("virtio_pci"),
                &["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"],
            ),
            ("scsi:t-0x00", Some("sd_mod"), &["scsi_common", "scsi_mod", "t10_pi"]),
            // Intel ICH9 AHCI (QEMU q35), by its PCI class.
            ("pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", Some("ahci"), &["libata", "libahci"]),
            // A Samsung NVMe SSD, by its PCI class.
            ("pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", Some("nvme"), &["nvme_core"]),
            ("platform:serial8250", None, &[]),
            ("virtio:d00000001v00001AF4", None, &[]),
        ];
        for (modalias, driver, deps) in cases {
            let got = modules_for(&[modalias.to_string()], &index);
            assert_eq!(got.last().map(String::as_str), *driver, "{modalias}: {got:?}");
            for d in *deps {
                assert!(got.contains(&d.to_string()), "{modalias}: {d} missing from {got:?}");
            }
            for (i, m) in got.iter().enumerate() {
                for d in &index.get(m).unwrap().depends {
                    assert!(got[..i].contains(d), "{modalias}: {m} before its dependency {d}: {got:?}");
                }
            }
        }
        let fs = modules_named(&["ext4"], &index);
        assert_eq!(fs.last().map(String::as_str), Some("ext4"));
        assert!(fs.contains(&"jbd2".to_string()) && fs.contains(&"crc32c_generic".to_string()), "{fs:?}");
    }
}
