//! Kernel modules: what a module says about itself in its `.modinfo` section
//! (name, `depends=`, `alias=`, `softdep=`), modalias glob matching as
//! modprobe does it, load order (dependencies first), and the small text
//! index that `rootstock mkinitramfs` writes so that PID 1 never parses ELF.
//!
//! Module names are compared normalised: `-` and `_` are the same character
//! to the kernel (`usb-storage` is `usb_storage`).
//!
//! [`ModuleTree`] reads a kernel's module directory, e.g.
//! `/lib/modules/6.1.0-56-amd64`; `.ko`, `.ko.xz`, `.ko.zst` and `.ko.gz`
//! files are understood. The index format and matching that PID 1 uses are
//! in `rootstock_core::modules`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rootstock_core::errno::Errno;
use rootstock_core::modules::order::{Edges, load_order};
pub use rootstock_core::modules::{INDEX_FILE, Index, IndexEntry, IndexError, alias_matches, normalize};

/// A decompressed module larger than this is refused (a decompression bomb
/// or a corrupt file; the largest real modules are a few tens of MiB).
const MAX_MODULE_SIZE: usize = 512 << 20;

/// What a module's `.modinfo` section says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModInfo {
    /// Normalised.
    pub name: String,
    /// Modules that must be loaded first (normalised names).
    pub depends: Vec<String>,
    /// Glob patterns, matched against device modaliases and requested names.
    pub aliases: Vec<String>,
    /// `softdep=pre: ...`: names or aliases, loaded first when present.
    pub softdep_pre: Vec<String>,
    /// `softdep=post: ...`: names or aliases, loaded afterwards when present.
    pub softdep_post: Vec<String>,
    /// e.g. `6.1.0-56-amd64 SMP preempt mod_unload modversions `.
    pub vermagic: Option<String>,
}

impl ModInfo {
    /// Parse the bytes of a `.modinfo` section: NUL-separated `key=value`
    /// strings. Kernels before 5.x have no `name=`: then `fallback_name`
    /// (the file name without `.ko`) is used. Unknown keys are ignored.
    pub fn parse(section: &[u8], fallback_name: &str) -> ModInfo {
        let mut info = ModInfo::default();
        for record in section.split(|&b| b == 0) {
            let record = String::from_utf8_lossy(record);
            let Some((key, value)) = record.split_once('=') else { continue };
            match key {
                "name" => info.name = normalize(value.trim()),
                "depends" => info
                    .depends
                    .extend(value.split(',').map(str::trim).filter(|d| !d.is_empty()).map(normalize)),
                "alias" if !value.is_empty() => info.aliases.push(value.to_string()),
                "softdep" => parse_softdep(value, &mut info.softdep_pre, &mut info.softdep_post),
                "vermagic" => info.vermagic = Some(value.to_string()),
                _ => {}
            }
        }
        if info.name.is_empty() {
            info.name = normalize(fallback_name);
        }
        info.depends.dedup();
        info
    }
}

/// `pre: a b post: c`. Words before any `pre:` or `post:` are ignored.
fn parse_softdep(value: &str, pre: &mut Vec<String>, post: &mut Vec<String>) {
    let mut into: Option<&mut Vec<String>> = None;
    for word in value.split_whitespace() {
        match word {
            "pre:" => into = Some(&mut *pre),
            "post:" => into = Some(&mut *post),
            w => {
                if let Some(list) = into.as_deref_mut() {
                    list.push(w.to_string());
                }
            }
        }
    }
}

/// What went wrong with modules, each naming the file or module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModError {
    Io {
        path: PathBuf,
        errno: Errno,
    },
    /// The kernel's module directory cannot be read.
    NoKernel {
        dir: PathBuf,
        kver: String,
        errno: Errno,
    },
    NotElf {
        path: PathBuf,
        reason: String,
    },
    NoModinfo {
        path: PathBuf,
    },
    Decompress {
        path: PathBuf,
        reason: String,
    },
    /// A requested name that is neither a module nor built into the kernel.
    NotFound {
        name: String,
        dir: PathBuf,
    },
    /// A module built for another kernel.
    WrongKernel {
        path: PathBuf,
        vermagic: String,
        kver: String,
    },
    /// A dependency graph or index that cannot be used.
    Index(IndexError),
}

impl fmt::Display for ModError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModError::Io { path, errno } => write!(f, "{}: {errno}", path.display()),
            ModError::NoKernel { dir, kver, errno } => write!(
                f,
                "no modules for kernel {kver}: {}: {errno} (choose the kernel with --kver and --modules-dir)",
                dir.display()
            ),
            ModError::NotElf { path, reason } => {
                write!(f, "{}: not a kernel module (not an ELF file: {reason})", path.display())
            }
            ModError::NoModinfo { path } => {
                write!(f, "{}: not a kernel module (no .modinfo section)", path.display())
            }
            ModError::Decompress { path, reason } => {
                write!(f, "{}: cannot decompress: {reason}", path.display())
            }
            ModError::NotFound { name, dir } => write!(
                f,
                "module {name}: neither a module file under {} nor built into the kernel (modules.builtin)",
                dir.display()
            ),
            ModError::WrongKernel { path, vermagic, kver } => {
                write!(f, "{}: built for kernel {vermagic:?}, not {kver}", path.display())
            }
            ModError::Index(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ModError {}

impl From<IndexError> for ModError {
    fn from(e: IndexError) -> ModError {
        ModError::Index(e)
    }
}

// ---------------------------------------------------------------------------
// Reading modules

/// The bytes of the `.modinfo` section of an ELF file, found through the
/// section headers with goblin. `Ok(None)`: an ELF file without one.
fn modinfo_section(bytes: &[u8]) -> Result<Option<&[u8]>, String> {
    use goblin::container::Ctx;
    use goblin::elf::{Elf, SectionHeader};

    let header = Elf::parse_header(bytes).map_err(|e| e.to_string())?;
    let container = header.container().map_err(|e| e.to_string())?;
    let endian = header.endianness().map_err(|e| e.to_string())?;
    let ctx = Ctx::new(container, endian);
    let sections = SectionHeader::parse(bytes, header.e_shoff as usize, header.e_shnum as usize, ctx)
        .map_err(|e| format!("section headers: {e}"))?;
    let data = |sh: &SectionHeader| -> Option<&[u8]> {
        let start = usize::try_from(sh.sh_offset).ok()?;
        let len = usize::try_from(sh.sh_size).ok()?;
        bytes.get(start..start.checked_add(len)?)
    };
    let names = sections.get(header.e_shstrndx as usize).and_then(data).ok_or("no section name table")?;
    for sh in &sections {
        let name = names.get(sh.sh_name..).and_then(|n| n.split(|&b| b == 0).next());
        if name == Some(b".modinfo") {
            return data(sh).map(Some).ok_or_else(|| "the .modinfo section lies outside the file".into());
        }
    }
    Ok(None)
}

/// Read the `.modinfo` of a module already in memory (uncompressed).
/// `path` is for messages; its file name gives the name on old kernels.
pub fn modinfo_from_elf(bytes: &[u8], path: &Path) -> Result<ModInfo, ModError> {
    let section = modinfo_section(bytes).map_err(|reason| ModError::NotElf { path: path.into(), reason })?;
    let section = section.ok_or_else(|| ModError::NoModinfo { path: path.into() })?;
    Ok(ModInfo::parse(section, module_stem(path).unwrap_or("")))
}

/// `ext4.ko.xz` → `ext4`; None for a file that is not a module.
fn module_stem(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .filter(|s| !s.is_empty())
}

/// A `Write` into memory that refuses to grow past a limit.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_MODULE_SIZE {
            return Err(std::io::Error::other(format!("larger than {} MiB", MAX_MODULE_SIZE >> 20)));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decompress a module file's contents by its name: `.ko.xz`, `.ko.zst`,
/// `.ko.gz`; anything else is returned as it is.
pub fn decompress(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, ModError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let err = |reason: String| ModError::Decompress { path: path.into(), reason };
    let mut out = Capped(Vec::new());
    if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut &bytes[..], &mut out).map_err(|e| err(format!("xz: {e:?}")))?;
    } else if name.ends_with(".zst") {
        let mut dec =
            ruzstd::decoding::StreamingDecoder::new(&bytes[..]).map_err(|e| err(format!("zstd: {e}")))?;
        std::io::copy(&mut dec, &mut out).map_err(|e| err(format!("zstd: {e}")))?;
    } else if name.ends_with(".gz") {
        let mut dec = flate2::read::MultiGzDecoder::new(&bytes[..]);
        std::io::copy(&mut dec, &mut out).map_err(|e| err(format!("gzip: {e}")))?;
    } else {
        return Ok(bytes);
    }
    Ok(out.0)
}

/// Read a module file: its uncompressed contents and its `.modinfo`.
pub fn read_module(path: &Path) -> Result<(Vec<u8>, ModInfo), ModError> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MODULE_SIZE as u64 + 1).read_to_end(&mut raw))
        .map_err(|e| ModError::Io { path: path.into(), errno: Errno::from_io(&e) })?;
    let bytes = decompress(path, raw)?;
    let info = modinfo_from_elf(&bytes, path)?;
    Ok((bytes, info))
}

// ---------------------------------------------------------------------------
// The modules of a kernel, on the host

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
            match std::fs::read(&path) {
                Ok(b) => Ok(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(io(&path, e)),
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
            let names: Vec<String> = self.files.keys().cloned().collect();
            let mut all = Vec::new();
            for name in names {
                match self.info(&name) {
                    Ok(info) => all.extend(info.aliases.iter().map(|a| (a.clone(), name.clone()))),
                    Err(e) => log::warn!("skipping while looking up aliases: {e}"),
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

#[cfg(test)]
pub(crate) mod test_support {
    //! The real Debian kernel the tests read, and fake modules.

    use std::path::PathBuf;

    /// `lib/modules/<kver>` of the kernel unpacked by
    /// `tests/fixtures/fetch-kernel.sh` (or the QEMU harness) into
    /// `<repo>/.cache/kernel/<kver>/`, or of `$ROOTSTOCK_TEST_KERNEL_DIR`
    /// (a directory holding `lib/modules/<kver>`). Fails (not skips) when
    /// it is missing.
    pub fn modules_dir() -> (PathBuf, String) {
        let roots: Vec<PathBuf> = match std::env::var_os("ROOTSTOCK_TEST_KERNEL_DIR") {
            Some(d) => vec![PathBuf::from(d)],
            None => {
                let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel");
                let mut v: Vec<PathBuf> = std::fs::read_dir(&cache)
                    .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.join(".complete").exists()).collect())
                    .unwrap_or_default();
                v.sort();
                v
            }
        };
        for root in roots.iter().rev() {
            let modules = root.join("lib/modules");
            let kvers: Vec<String> = std::fs::read_dir(&modules)
                .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
                .unwrap_or_default();
            if let [k] = &kvers[..] {
                return (modules.join(k), k.clone());
            }
        }
        panic!(
            "no Debian kernel unpacked: run `tests/fixtures/fetch-kernel.sh {}/.cache/kernel` first \
             (or set ROOTSTOCK_TEST_KERNEL_DIR to a directory holding lib/modules/KVER)",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    /// A minimal ELF64 relocatable file holding the given sections.
    pub fn fake_elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut shstrtab = vec![0u8];
        let mut name_offsets = Vec::new();
        for (name, _) in sections.iter().chain([(".shstrtab", &[][..])].iter()) {
            name_offsets.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(name.as_bytes());
            shstrtab.push(0);
        }
        let mut body = Vec::new();
        let mut placed = Vec::new();
        for (_, data) in sections.iter().copied().chain([(".shstrtab", &shstrtab[..])]) {
            placed.push((64 + body.len() as u64, data.len() as u64));
            body.extend_from_slice(data);
        }
        while body.len() % 8 != 0 {
            body.push(0);
        }
        let shoff = 64 + body.len() as u64;
        let shnum = sections.len() as u16 + 2;
        let mut out = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
        out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // entry
        out.extend_from_slice(&0u64.to_le_bytes()); // phoff
        out.extend_from_slice(&shoff.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes()); // flags
        for v in [64u16, 0, 0, 64, shnum, shnum - 1] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&body);
        out.extend_from_slice(&[0u8; 64]); // the null section
        for (i, (off, size)) in placed.iter().enumerate() {
            let ty: u32 = if i + 1 == placed.len() { 3 } else { 1 }; // SHT_STRTAB / SHT_PROGBITS
            out.extend_from_slice(&name_offsets[i].to_le_bytes());
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&0u64.to_le_bytes()); // flags
            out.extend_from_slice(&0u64.to_le_bytes()); // addr
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&[0u8; 24]); // link, info, addralign, entsize
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::fake_elf;
    use super::*;
    use rootstock_core::modules::{modules_for, modules_named};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn modinfo_records() {
        let section = b"license=GPL\0alias=virtio:d00000002v*\0depends=virtio,virtio_ring\0\
            softdep=pre: crypto-crc32c post: foo-bar\0name=virtio_blk\0\0\0garbage\0\
            vermagic=6.1.0 SMP \0alias=\0";
        let info = ModInfo::parse(section, "ignored");
        assert_eq!(
            info,
            ModInfo {
                name: "virtio_blk".into(),
                depends: vec!["virtio".into(), "virtio_ring".into()],
                aliases: vec!["virtio:d00000002v*".into()],
                softdep_pre: vec!["crypto-crc32c".into()],
                softdep_post: vec!["foo-bar".into()],
                vermagic: Some("6.1.0 SMP ".into()),
            }
        );
        // Old kernels: no name=; an empty depends=.
        let info = ModInfo::parse(b"depends=\0alias=fs-ext4\0", "usb-storage");
        assert_eq!((info.name.as_str(), info.depends.len()), ("usb_storage", 0));
        // Words before pre:/post: are not softdeps.
        let info = ModInfo::parse(b"softdep=gcm\0softdep=pre: a b\0", "m");
        assert_eq!((info.softdep_pre, info.softdep_post), (vec!["a".into(), "b".into()], vec![]));
    }
    #[test]
    fn elf_inputs() {
        let p = Path::new("x/m.ko");
        let good = fake_elf(&[(".text", b"\xc3"), (".modinfo", b"name=m\0depends=a\0")]);
        assert_eq!(modinfo_from_elf(&good, p).unwrap().depends, ["a"]);
        let none = fake_elf(&[(".text", b"\xc3")]);
        assert_eq!(modinfo_from_elf(&none, p), Err(ModError::NoModinfo { path: p.into() }));
        let cases: &[(&[u8], &str)] = &[
            (b"", "not an ELF file"),
            (b"hello, I am a text file, not a module at all, really I'm not.......", "not an ELF file"),
            (&good[..40], "not an ELF file"),
            (&good[..good.len() - 10], "not an ELF file"),
        ];
        for (bytes, want) in cases {
            let err = modinfo_from_elf(bytes, p).unwrap_err().to_string();
            assert!(err.starts_with("x/m.ko: ") && err.contains(want), "{err}");
        }
        // A .modinfo whose offset points past the end of the file.
        let mut broken = good.clone();
        let shoff = u64::from_le_bytes(broken[40..48].try_into().unwrap()) as usize;
        let modinfo_sh = shoff + 2 * 64;
        broken[modinfo_sh + 24..modinfo_sh + 32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(modinfo_from_elf(&broken, p).unwrap_err().to_string().contains("outside the file"));
    }

    #[test]
    fn compressed_modules() {
        let elf = fake_elf(&[(".modinfo", b"name=m\0alias=fs-m\0")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &elf[..], &mut xz).unwrap();
        let zst = ruzstd::encoding::compress_to_vec(&elf[..], ruzstd::encoding::CompressionLevel::Fastest);
        let cases: &[(&str, &[u8])] =
            &[("m.ko", &elf), ("m.ko.gz", &gz), ("m.ko.xz", &xz), ("m.ko.zst", &zst)];
        for (name, bytes) in cases {
            assert_eq!(decompress(Path::new(name), bytes.to_vec()).unwrap(), elf, "{name}");
        }
        for (name, bytes) in &cases[1..] {
            let err = decompress(Path::new(name), elf.clone()).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{name}: cannot decompress")), "{err}");
            let truncated = decompress(Path::new(name), bytes[..bytes.len() / 2].to_vec());
            assert!(truncated.is_err(), "{name}");
        }
    }

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
        let (dir, kver) = test_support::modules_dir();
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
        let (dir, kver) = test_support::modules_dir();
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
