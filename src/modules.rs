//! Kernel modules: what a module says about itself in its `.modinfo` section
//! (name, `depends=`, `alias=`, `softdep=`), modalias glob matching as
//! modprobe does it, load order (dependencies first), and the small text
//! index that `rootstock mkinitramfs` writes so that PID 1 never parses ELF.
//!
//! Module names are compared normalised: `-` and `_` are the same character
//! to the kernel (`usb-storage` is `usb_storage`).
//!
//! The host side ([`ModuleTree`]) reads a kernel's module directory, e.g.
//! `/lib/modules/6.1.0-56-amd64`; `.ko`, `.ko.xz`, `.ko.zst` and `.ko.gz`
//! files are understood. The boot side needs only [`Index`] and
//! [`modules_for`] / [`modules_named`], which are pure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::errno::Errno;

/// The name of the index file, in `lib/modules/<kver>/` of the initramfs.
pub const INDEX_FILE: &str = "rootstock.modules";

/// A decompressed module larger than this is refused (a decompression bomb
/// or a corrupt file; the largest real modules are a few tens of MiB).
const MAX_MODULE_SIZE: usize = 512 << 20;

/// `usb-storage` → `usb_storage`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

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
    /// `depends=` names a module that is not there.
    MissingDependency {
        module: String,
        needs: String,
    },
    /// A dependency cycle, the first name repeated at the end.
    Cycle(Vec<String>),
    /// A module built for another kernel.
    WrongKernel {
        path: PathBuf,
        vermagic: String,
        kver: String,
    },
    /// A bad line in the index.
    Index {
        line: usize,
        reason: String,
    },
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
            ModError::MissingDependency { module, needs } => {
                write!(f, "module {module} depends on {needs}, which is missing")
            }
            ModError::Cycle(names) => write!(f, "module dependency cycle: {}", names.join(" -> ")),
            ModError::WrongKernel { path, vermagic, kver } => {
                write!(f, "{}: built for kernel {vermagic:?}, not {kver}", path.display())
            }
            ModError::Index { line, reason } => write!(f, "module index, line {line}: {reason}"),
        }
    }
}

impl std::error::Error for ModError {}

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
// Glob matching

/// Does the modalias (or module name) `s` match the glob `pattern` of an
/// `alias=`? fnmatch(3) without flags, as modprobe uses it: `*` any run of
/// characters (`/` included), `?` one character, `[...]` a set with ranges
/// (`a-z`), negation (`!` or `^`), classes (`[:digit:]`) and a leading `]`
/// taken literally; `\` quotes the next character. A `[` without its `]` is
/// a literal `[`.
pub fn alias_matches(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where to resume after the last `*`: (pattern index after it, text index).
    let mut resume: Option<(usize, usize)> = None;
    while ti < t.len() {
        if let Some(&c) = p.get(pi) {
            let step = match c {
                '*' => {
                    resume = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                '?' => Some(1),
                '[' => match bracket(&p, pi, t[ti]) {
                    Some((true, len)) => Some(len),
                    Some((false, _)) => None,
                    None => (t[ti] == '[').then_some(1),
                },
                '\\' if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(2),
                c => (c == t[ti]).then_some(1),
            };
            if let Some(len) = step {
                pi += len;
                ti += 1;
                continue;
            }
        }
        // A mismatch: let the last `*` take one more character.
        match resume {
            Some((after_star, from)) => {
                pi = after_star;
                ti = from + 1;
                resume = Some((after_star, from + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Match `c` against the bracket expression starting at `p[start] == '['`.
/// Returns whether it matched and the expression's length, or None when the
/// `[` has no closing `]` (then it is an ordinary character).
fn bracket(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let item = *p.get(i)?;
        if item == ']' && !first {
            return Some((matched != negate, i + 1 - start));
        }
        first = false;
        if item == '[' && p.get(i + 1) == Some(&':') {
            // A class such as [:digit:].
            let rest: String = p[i + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                let class = &rest[..end];
                matched |= class_matches(class, c);
                i += 2 + class.chars().count() + 2;
                continue;
            }
        }
        let (lo, next) = if item == '\\' { (*p.get(i + 1)?, i + 2) } else { (item, i + 1) };
        if p.get(next) == Some(&'-') && p.get(next + 1).is_some_and(|&h| h != ']') {
            let (hi, after) =
                if p[next + 1] == '\\' { (*p.get(next + 2)?, next + 3) } else { (p[next + 1], next + 2) };
            matched |= lo <= c && c <= hi;
            i = after;
        } else {
            matched |= lo == c;
            i = next;
        }
    }
}

fn class_matches(class: &str, c: char) -> bool {
    match class {
        "alnum" => c.is_ascii_alphanumeric(),
        "alpha" => c.is_ascii_alphabetic(),
        "blank" => c == ' ' || c == '\t',
        "cntrl" => c.is_ascii_control(),
        "digit" => c.is_ascii_digit(),
        "graph" => c.is_ascii_graphic(),
        "lower" => c.is_ascii_lowercase(),
        "print" => c.is_ascii_graphic() || c == ' ',
        "punct" => c.is_ascii_punctuation(),
        "space" => c.is_ascii_whitespace() || c == '\x0b',
        "upper" => c.is_ascii_uppercase(),
        "xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Load order

/// A module's edges for ordering: hard dependencies (must be there; a cycle
/// is an error), and soft ones (already resolved to module names; loaded
/// first or afterwards when possible, never an error).
#[derive(Debug, Default)]
struct Edges {
    hard: Vec<String>,
    soft_pre: Vec<String>,
    soft_post: Vec<String>,
}

/// Order `roots` and everything they need, dependencies first, each module
/// once. Hard dependencies in their `depends=` order, then pre-softdeps;
/// post-softdeps are queued after the roots that pulled them in. Iterative,
/// so a long hostile chain cannot overflow the stack.
fn load_order<F>(roots: &[String], mut edges_of: F) -> Result<Vec<String>, ModError>
where
    F: FnMut(&str) -> Result<Edges, ModError>,
{
    #[derive(PartialEq)]
    enum State {
        Visiting,
        Done,
    }
    let mut state: BTreeMap<String, State> = BTreeMap::new();
    let mut order = Vec::new();
    let mut queue: VecDeque<String> = roots.iter().cloned().collect();
    // (module, its children as (name, hard), next child)
    type Frame = (String, Vec<(String, bool)>, usize);
    let mut stack: Vec<Frame> = Vec::new();
    while let Some(root) = queue.pop_front() {
        if state.contains_key(&root) {
            continue;
        }
        let mut enter = |name: &str, state: &mut BTreeMap<String, State>, queue: &mut VecDeque<String>| {
            let e = edges_of(name)?;
            state.insert(name.to_string(), State::Visiting);
            queue.extend(e.soft_post);
            let children =
                e.hard.into_iter().map(|h| (h, true)).chain(e.soft_pre.into_iter().map(|s| (s, false)));
            Ok::<_, ModError>((name.to_string(), children.collect::<Vec<_>>(), 0))
        };
        stack.push(enter(&root, &mut state, &mut queue)?);
        while let Some((name, children, next)) = stack.last_mut() {
            let Some((child, hard)) = children.get(*next).cloned() else {
                state.insert(name.clone(), State::Done);
                order.push(name.clone());
                stack.pop();
                continue;
            };
            *next += 1;
            match state.get(&child) {
                Some(State::Done) => {}
                Some(State::Visiting) if hard => {
                    let from = stack.iter().position(|f| f.0 == child).unwrap_or(0);
                    let mut cycle: Vec<String> = stack[from..].iter().map(|f| f.0.clone()).collect();
                    cycle.push(child);
                    return Err(ModError::Cycle(cycle));
                }
                // A softdep back onto a module being loaded: drop that edge.
                Some(State::Visiting) => {}
                None => stack.push(enter(&child, &mut state, &mut queue)?),
            }
        }
    }
    Ok(order)
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
                    return Err(ModError::MissingDependency { module: name.into(), needs: d.clone() });
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

// ---------------------------------------------------------------------------
// The index in the initramfs

/// One module in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Normalised.
    pub name: String,
    /// Relative to the index's directory, e.g. `kernel/fs/ext4/ext4.ko`.
    pub path: String,
    pub depends: Vec<String>,
    pub softdep_pre: Vec<String>,
    pub softdep_post: Vec<String>,
    pub aliases: Vec<String>,
}

/// The modules of an initramfs: what PID 1 reads instead of ELF.
///
/// Text, one module per line, fields separated by one tab:
///
/// ```text
/// # comment
/// rootstock-modules 1 6.1.0-56-amd64
/// ext4<TAB>kernel/fs/ext4/ext4.ko<TAB>jbd2,mbcache,crc16<TAB><TAB><TAB>fs-ext4<TAB>ext3 ...
/// ```
///
/// The first line that is not a comment is the header: the format version
/// and the kernel version. Module fields: name, path, depends, softdep-pre,
/// softdep-post (each a comma-separated list of module names in the index,
/// possibly empty), then every alias. Every dependency must be in the index
/// and the hard dependencies must not form a cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    kver: String,
    entries: BTreeMap<String, IndexEntry>,
}

const INDEX_MAGIC: &str = "rootstock-modules";
const INDEX_VERSION: &str = "1";

impl Index {
    /// Build an index, checking it as [`Index::parse`] does.
    pub fn new(kver: &str, entries: Vec<IndexEntry>) -> Result<Index, ModError> {
        let bad = |reason: String| ModError::Index { line: 0, reason };
        if kver.is_empty() || kver.contains(char::is_whitespace) {
            return Err(bad(format!("bad kernel version {kver:?}")));
        }
        let mut map = BTreeMap::new();
        for mut e in entries {
            e.name = normalize(&e.name);
            check_entry(&e).map_err(bad)?;
            let name = e.name.clone();
            if map.insert(name.clone(), e).is_some() {
                return Err(bad(format!("module {name} is listed twice")));
            }
        }
        let index = Index { kver: kver.into(), entries: map };
        index.check_references()?;
        Ok(index)
    }

    pub fn kver(&self) -> &str {
        &self.kver
    }

    pub fn get(&self, name: &str) -> Option<&IndexEntry> {
        self.entries.get(&normalize(name))
    }

    pub fn entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries.values()
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "# rootstock module index, written by `rootstock mkinitramfs`, read by /init.\n\
             # One module per line, tab-separated: name, path (relative to this file's directory),\n\
             # depends, softdep-pre, softdep-post (comma-separated module names), then its aliases.\n\
             {INDEX_MAGIC} {INDEX_VERSION} {}\n",
            self.kver
        );
        for e in self.entries.values() {
            let fields =
                [&e.name, &e.path, &e.depends.join(","), &e.softdep_pre.join(","), &e.softdep_post.join(",")];
            let line: Vec<&str> =
                fields.into_iter().map(String::as_str).chain(e.aliases.iter().map(String::as_str)).collect();
            out.push_str(&line.join("\t"));
            out.push('\n');
        }
        out
    }

    pub fn parse(text: &str) -> Result<Index, ModError> {
        let mut kver = None;
        let mut entries: BTreeMap<String, IndexEntry> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let bad = |reason: String| ModError::Index { line: n + 1, reason };
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(kver) = &kver else {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    [INDEX_MAGIC, INDEX_VERSION, k] => kver = Some(k.to_string()),
                    [INDEX_MAGIC, v, _] => return Err(bad(format!("unsupported version {v}"))),
                    _ => return Err(bad(format!("expected \"{INDEX_MAGIC} {INDEX_VERSION} KVER\""))),
                }
                continue;
            };
            let _ = kver;
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, path, depends, pre, post, aliases @ ..] = &fields[..] else {
                return Err(bad(format!("{} fields, expected at least 5", fields.len())));
            };
            let list =
                |s: &str| -> Vec<String> { s.split(',').filter(|x| !x.is_empty()).map(normalize).collect() };
            let e = IndexEntry {
                name: normalize(name),
                path: path.to_string(),
                depends: list(depends),
                softdep_pre: list(pre),
                softdep_post: list(post),
                aliases: aliases.iter().filter(|a| !a.is_empty()).map(|a| a.to_string()).collect(),
            };
            check_entry(&e).map_err(bad)?;
            if entries.contains_key(&e.name) {
                return Err(bad(format!("module {} is listed twice", e.name)));
            }
            entries.insert(e.name.clone(), e);
        }
        let kver = kver.ok_or(ModError::Index { line: 0, reason: "no header line".into() })?;
        let index = Index { kver, entries };
        index.check_references()?;
        Ok(index)
    }

    /// Every named dependency is in the index; hard ones have no cycle.
    fn check_references(&self) -> Result<(), ModError> {
        for e in self.entries.values() {
            for d in e.depends.iter().chain(&e.softdep_pre).chain(&e.softdep_post) {
                if !self.entries.contains_key(d) {
                    return Err(ModError::MissingDependency { module: e.name.clone(), needs: d.clone() });
                }
            }
        }
        let all: Vec<String> = self.entries.keys().cloned().collect();
        load_order(&all, |name| Ok(self.edges(name))).map(|_| ())
    }

    fn edges(&self, name: &str) -> Edges {
        match self.entries.get(name) {
            Some(e) => Edges {
                hard: e.depends.clone(),
                soft_pre: e.softdep_pre.clone(),
                soft_post: e.softdep_post.clone(),
            },
            None => Edges::default(),
        }
    }

    /// Modules whose name is `name` or one of whose aliases matches it,
    /// sorted.
    pub fn lookup(&self, name: &str) -> Vec<String> {
        if let Some(e) = self.get(name) {
            return vec![e.name.clone()];
        }
        self.entries
            .values()
            .filter(|e| e.aliases.iter().any(|a| alias_matches(a, name)))
            .map(|e| e.name.clone())
            .collect()
    }

    /// Load order for `roots`; references were checked when the index was
    /// made, so this cannot fail.
    fn order(&self, roots: &[String]) -> Vec<String> {
        load_order(roots, |name| Ok(self.edges(name))).unwrap_or_default()
    }
}

fn check_entry(e: &IndexEntry) -> Result<(), String> {
    if e.name.is_empty() || e.name.contains([',', ' ', '\t', '/']) {
        return Err(format!("bad module name {:?}", e.name));
    }
    let path_ok = e.path.ends_with(".ko")
        && !e.path.starts_with('/')
        && e.path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !path_ok {
        return Err(format!("module {}: bad path {:?} (a relative .ko path is needed)", e.name, e.path));
    }
    if e.aliases.iter().any(|a| a.contains(['\t', '\n', '\r'])) {
        return Err(format!("module {}: an alias holds a tab or newline", e.name));
    }
    Ok(())
}

/// The modules to load for these device modaliases (from
/// `/sys/devices/**/modalias`), in load order: every module with an alias
/// matching one of them, each after its dependencies, each once. Modules
/// already loaded can be filtered out by the caller; the order stays valid.
pub fn modules_for(modaliases: &[String], index: &Index) -> Vec<String> {
    let mut roots = Vec::new();
    for m in modaliases {
        for e in index.entries.values() {
            if e.aliases.iter().any(|a| alias_matches(a, m)) {
                roots.push(e.name.clone());
            }
        }
    }
    index.order(&roots)
}

/// The modules to load for names such as a `rootfstype=` (`ext4`, found by
/// its module name or its `fs-ext4` alias), in load order.
pub fn modules_named(names: &[&str], index: &Index) -> Vec<String> {
    let mut roots = Vec::new();
    for n in names {
        let mut found = index.lookup(n);
        if found.is_empty() {
            found = index.lookup(&format!("fs-{n}"));
        }
        roots.extend(found);
    }
    index.order(&roots)
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

    #[test]
    fn glob_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("virtio:d00000002v*", "virtio:d00000002v00001AF4", true),
            ("virtio:d00000002v*", "virtio:d00000008v00001AF4", false),
            ("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", true),
            ("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001001sv00001AF4sd00000002bc01sc00i00", false),
            ("pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", true),
            ("pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc06i01", false),
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything/at:all", true),
            ("**a**", "bab", true),
            ("a*b*c", "aXXbYYbZc", true),
            ("a*b*c", "aXXbYYbZ", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("?", "", false),
            ("d[0-2]*", "d1x", true),
            ("d[0-2]*", "d3x", false),
            ("d3[0-9A-E]*", "d3Cx", true),
            ("d3[0-9A-E]*", "d3Fx", false),
            ("[!a]", "b", true),
            ("[!a]", "a", false),
            ("[^a-c]", "d", true),
            ("[^a-c]", "b", false),
            ("[]]", "]", true),
            ("[!]]", "]", false),
            ("[a-]", "-", true),
            ("[[:digit:]]x", "7x", true),
            ("[[:digit:]]x", "ax", false),
            ("[[:xdigit:][:upper:]]", "Z", true),
            ("a[", "a[", true),
            ("a[b", "a[b", true),
            ("a[b", "ab", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[\\]]", "]", true),
            ("a\\", "a\\", true),
            ("dmi:*:[bs]vnD[Ee][Ll][Ll]*:*", "dmi:bvnDell Inc.:bvr1.2:svnDELL:pn:", true),
            ("dmi:*:[bs]vnD[Ee][Ll][Ll]*:*", "dmi:bvnLENOVO:bvr1.2:svnLENOVO:", false),
            (
                "usb:v13FDp3940d0[0-2]*dc*dsc*dp*ic*isc*ip*in*",
                "usb:v13FDp3940d0150dc00dsc00dp00ic08isc06ip50in00",
                true,
            ),
            ("usb:v13FDp3940d0[0-2]*dc*", "usb:v13FDp3940d0350dc00", false),
            ("fs-ext4", "fs-ext4", true),
            ("fs-ext4", "fs-ext", false),
            ("é?", "éü", true),
        ];
        for (pattern, s, want) in cases {
            assert_eq!(alias_matches(pattern, s), *want, "alias_matches({pattern:?}, {s:?})");
        }
    }

    #[test]
    fn glob_matching_is_not_exponential() {
        let pattern = "*a".repeat(30) + "b";
        let s = "a".repeat(200);
        let t = std::time::Instant::now();
        assert!(!alias_matches(&pattern, &s));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
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

    fn edges_from(graph: &[(&str, &[&str], &[&str])]) -> impl FnMut(&str) -> Result<Edges, ModError> {
        let graph: BTreeMap<String, (Vec<String>, Vec<String>)> = graph
            .iter()
            .map(|(n, h, s)| {
                (
                    n.to_string(),
                    (h.iter().map(|x| x.to_string()).collect(), s.iter().map(|x| x.to_string()).collect()),
                )
            })
            .collect();
        move |name| match graph.get(name) {
            Some((hard, soft)) => Ok(Edges { hard: hard.clone(), soft_pre: soft.clone(), soft_post: vec![] }),
            None => Err(ModError::NotFound { name: name.into(), dir: PathBuf::new() }),
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn order_dependencies_first() {
        type Graph<'a> = &'a [(&'a str, &'a [&'a str], &'a [&'a str])];
        let diamond: Graph =
            &[("a", &["b", "c"], &[]), ("b", &["d"], &[]), ("c", &["d"], &[]), ("d", &[], &[])];
        let soft_cycle: Graph = &[("a", &["b"], &[]), ("b", &[], &["a"])];
        type Case<'a> = (Graph<'a>, &'a [&'a str], Result<&'a [&'a str], ModError>);
        let cases: &[Case] = &[
            (diamond, &["a"], Ok(&["d", "b", "c", "a"])),
            (diamond, &["c", "a"], Ok(&["d", "c", "b", "a"])),
            (diamond, &["d", "d"], Ok(&["d"])),
            (&[("a", &[], &["s"]), ("s", &[], &[])], &["a"], Ok(&["s", "a"])),
            (soft_cycle, &["a"], Ok(&["b", "a"])),
            (&[("a", &["a"], &[])], &["a"], Err(ModError::Cycle(strings(&["a", "a"])))),
            (
                &[("x", &["a"], &[]), ("a", &["b"], &[]), ("b", &["c"], &[]), ("c", &["a"], &[])],
                &["x"],
                Err(ModError::Cycle(strings(&["a", "b", "c", "a"]))),
            ),
            (
                &[("a", &["zz"], &[])],
                &["a"],
                Err(ModError::NotFound { name: "zz".into(), dir: PathBuf::new() }),
            ),
        ];
        for (graph, roots, want) in cases {
            let got = load_order(&strings(roots), edges_from(graph));
            let want = want.clone().map(strings);
            assert_eq!(got, want, "{graph:?} from {roots:?}");
        }
    }

    #[test]
    fn a_long_chain_does_not_overflow() {
        let n = 200_000;
        let got = load_order(&["m0".to_string()], |name| {
            let i: usize = name[1..].parse().unwrap();
            Ok(Edges { hard: if i < n { vec![format!("m{}", i + 1)] } else { vec![] }, ..Edges::default() })
        })
        .unwrap();
        assert_eq!(got.len(), n + 1);
        assert_eq!(got[0], format!("m{n}"));
    }

    fn entry(name: &str, depends: &[&str], aliases: &[&str]) -> IndexEntry {
        IndexEntry {
            name: name.into(),
            path: format!("kernel/{name}.ko"),
            depends: strings(depends),
            softdep_pre: vec![],
            softdep_post: vec![],
            aliases: strings(aliases),
        }
    }

    fn small_index() -> Index {
        let mut ext4 = entry("ext4", &["jbd2", "mbcache", "crc16"], &["fs-ext4", "ext3", "fs-ext3"]);
        let mut jbd2 = entry("jbd2", &[], &[]);
        jbd2.softdep_pre = strings(&["crc32c_generic"]);
        ext4.path = "kernel/fs/ext4/ext4.ko".into();
        Index::new(
            "6.1.0-test",
            vec![
                ext4,
                jbd2,
                entry("mbcache", &[], &[]),
                entry("crc16", &[], &[]),
                entry("crc32c_generic", &[], &["crypto-crc32c", "crc32c"]),
                entry("virtio", &[], &[]),
                entry("virtio_ring", &[], &[]),
                entry("virtio_blk", &["virtio", "virtio_ring"], &["virtio:d00000002v*"]),
                entry("virtio_scsi", &["scsi_mod", "virtio_ring", "virtio"], &["virtio:d00000008v*"]),
                entry("scsi_mod", &[], &[]),
                entry("sd_mod", &["scsi_mod"], &["scsi:t-0x00*", "scsi:t-0x0e*"]),
                entry("virtio_pci", &["virtio_ring", "virtio"], &["pci:v00001AF4d*sv*sd*bc*sc*i*"]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn boot_selection() {
        let index = small_index();
        let cases: &[(&[&str], &[&str])] = &[
            (&["virtio:d00000002v00001AF4"], &["virtio", "virtio_ring", "virtio_blk"]),
            (
                &[
                    "pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00",
                    "virtio:d00000008v00001AF4",
                    "scsi:t-0x00",
                ],
                &["virtio_ring", "virtio", "virtio_pci", "scsi_mod", "virtio_scsi", "sd_mod"],
            ),
            (&["pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", "acpi:PNP0A03:"], &[]),
            (&[], &[]),
        ];
        for (aliases, want) in cases {
            assert_eq!(modules_for(&strings(aliases), &index), strings(want), "{aliases:?}");
        }
        let named: &[(&[&str], &[&str])] = &[
            (&["ext4"], &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"]),
            (&["ext3"], &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"]),
            (
                &["fs-ext4", "sd-mod"],
                &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4", "scsi_mod", "sd_mod"],
            ),
            (&["xfs"], &[]),
        ];
        for (names, want) in named {
            assert_eq!(modules_named(names, &index), strings(want), "{names:?}");
        }
    }

    #[test]
    fn index_round_trip() {
        let index = small_index();
        let text = index.render();
        assert!(
            text.contains("\next4\tkernel/fs/ext4/ext4.ko\tjbd2,mbcache,crc16\t\t\tfs-ext4\text3\tfs-ext3\n"),
            "{text}"
        );
        assert!(text.contains("\nrootstock-modules 1 6.1.0-test\n"));
        let back = Index::parse(&text).unwrap();
        assert_eq!(back, index);
        assert_eq!(back.kver(), "6.1.0-test");
        assert_eq!(back.get("virtio-blk").map(|e| e.path.as_str()), Some("kernel/virtio_blk.ko"));
    }

    #[test]
    fn hostile_indexes_are_errors() {
        let head = "rootstock-modules 1 6.1.0\n";
        let cases: &[(String, &str)] = &[
            (String::new(), "no header line"),
            ("# only a comment\n".into(), "no header line"),
            ("rootstock-modules 2 6.1.0\n".into(), "line 1: unsupported version 2"),
            ("something else\n".into(), "line 1: expected"),
            (format!("{head}a\tkernel/a.ko\n"), "line 2: 2 fields"),
            (format!("{head}a\t/kernel/a.ko\t\t\t\n"), "bad path"),
            (format!("{head}a\tkernel/../../a.ko\t\t\t\n"), "bad path"),
            (format!("{head}a\tkernel/a.txt\t\t\t\n"), "bad path"),
            (format!("{head}\tkernel/a.ko\t\t\t\n"), "bad module name"),
            (
                format!("{head}a\tkernel/a.ko\t\t\t\na\tkernel/b.ko\t\t\t\n"),
                "line 3: module a is listed twice",
            ),
            (format!("{head}a\tkernel/a.ko\tb\t\t\n"), "module a depends on b, which is missing"),
            (format!("{head}a\tkernel/a.ko\t\tb\t\n"), "module a depends on b, which is missing"),
            (
                format!("{head}a\tkernel/a.ko\tb\t\t\nb\tkernel/b.ko\tc\t\t\nc\tkernel/c.ko\ta\t\t\n"),
                "cycle: a -> b -> c -> a",
            ),
        ];
        for (text, want) in cases {
            let err = Index::parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        // A softdep cycle is allowed (modprobe copes with it too).
        let ok = format!("{head}a\tkernel/a.ko\t\tb\t\nb\tkernel/b.ko\t\ta\t\n");
        let index = Index::parse(&ok).unwrap();
        assert_eq!(modules_named(&["a"], &index), strings(&["b", "a"]));
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
