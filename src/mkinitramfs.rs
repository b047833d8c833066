//! `rootstock mkinitramfs`: rootstock's own initramfs.
//!
//! Contents: the boot program (`rootstock-boot`) as `/init`; `/dev`, `/proc`, `/sys`, `/run`,
//! `/sysroot`; the device node `/dev/console` (5,1), which the kernel opens
//! before it starts `/init`; the modules of a module set and everything they
//! need, uncompressed, under `/lib/modules/<kver>/` with the index
//! [`modules::INDEX_FILE`] that PID 1 reads; and extra files such as a
//! static busybox for an emergency shell.
//!
//! The same inputs give a byte-identical image (see `rootstock_core::cpio`).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use rootstock_core::cpio::{self, CpioError, Entry};
use rootstock_core::errno::Errno;

use crate::arch::{ListError, Machine, parse_list};
use crate::compress::{Compression, compress, default_for_kernel};
use crate::firmware;
use crate::hostonly::{self, HostError, HostOptions};
use crate::modules::{self, Index, IndexEntry, ModError, ModuleTree};

/// Where module sets (`NAME.list`) are looked up, first match wins.
pub const LIST_DIRS: [&str; 2] = ["/etc/rootstock/initramfs", "/usr/lib/rootstock/initramfs"];

/// An extra file: read from `host` (symlinks followed), stored at `dest`
/// (relative, e.g. `bin/busybox`) with the host file's permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub host: PathBuf,
    pub dest: String,
}

impl std::str::FromStr for Extra {
    type Err = String;
    /// `HOST:DEST`, or `HOST` alone for the same path inside.
    fn from_str(s: &str) -> Result<Extra, String> {
        let (host, dest) = s.split_once(':').unwrap_or((s, s));
        let dest = dest.trim_start_matches('/');
        if host.is_empty() || dest.is_empty() {
            return Err(format!("bad extra {s:?}: expected HOST_PATH[:INITRAMFS_PATH]"));
        }
        Ok(Extra { host: host.into(), dest: dest.into() })
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Kernel version; None: the running kernel's.
    pub kver: Option<String>,
    /// Holds `<kver>/`; normally /lib/modules.
    pub modules_dir: PathBuf,
    /// A module set: a name (looked up as `NAME.list` in `list_dirs`), a
    /// path (anything with a `/`), or None for no set.
    pub module_set: Option<String>,
    pub list_dirs: Vec<PathBuf>,
    /// More module names, as if they were in the set.
    pub add_modules: Vec<String>,
    /// The program to install as `/init`.
    pub binary: PathBuf,
    pub extras: Vec<Extra>,
    /// None: the first of zstd, xz, gzip that the kernel's config enables
    /// ([`crate::compress::default_for_kernel`]).
    pub compress: Option<Compression>,
    /// Where the modules' `firmware=` files are looked up (normally
    /// /lib/firmware); None: no firmware.
    pub firmware_dir: Option<PathBuf>,
    /// Where the configuration the boot reads is copied from (normally `/`):
    /// rootstock's `rootstock.conf` and ostree's `prepare-root.conf` (both
    /// under `etc/` and `usr/lib/`), and the composefs signing key; None:
    /// none is copied.
    pub config_root: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            kver: None,
            modules_dir: "/lib/modules".into(),
            module_set: Some("generic".into()),
            list_dirs: LIST_DIRS.iter().map(PathBuf::from).collect(),
            add_modules: Vec::new(),
            binary: default_boot_binary(),
            extras: Vec::new(),
            compress: None,
            firmware_dir: Some(firmware::FIRMWARE_DIR.into()),
            config_root: None,
        }
    }
}

/// A built image and what went into it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The compressed archive, ready to write.
    pub bytes: Vec<u8>,
    /// The size of the archive before compression.
    pub cpio_len: usize,
    /// How it was compressed, and why so (`--compress`, or the kernel
    /// config option that made it the default).
    pub compression: Compression,
    pub compression_why: String,
    pub kver: String,
    /// What the kernel's modules are built for (None: no module files).
    pub machine: Option<Machine>,
    /// The modules included, in load order.
    pub modules: Vec<String>,
    /// Names of the set that are built into the kernel, so not included.
    pub builtin: Vec<String>,
    /// The module index written into the image.
    pub index: Index,
    /// Firmware files included, and those the modules name but that are
    /// not there (each a warning).
    pub firmware: Vec<firmware::Found>,
    pub missing_firmware: Vec<firmware::Missing>,
}

/// What `mkinitramfs` can fail on; the caller prefixes "mkinitramfs: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkError {
    #[error(transparent)]
    Modules(#[from] ModError),
    #[error(transparent)]
    Cpio(#[from] CpioError),
    /// Reading an input: `what` is e.g. "the /init binary".
    #[error("reading {what} {}: {errno}", path.display())]
    Read { what: &'static str, path: PathBuf, errno: Errno },
    #[error("{what} {} is not a regular file", path.display())]
    NotAFile { what: &'static str, path: PathBuf },
    #[error("no module set {set:?}: no {set}.list in {}", show_dirs(looked_in))]
    NoModuleSet { set: String, looked_in: Vec<PathBuf> },
    /// A line of a module set that cannot be read.
    #[error("{}: {source}", list.display())]
    BadList { list: PathBuf, source: ListError },
    /// The boot program is built for another machine than the kernel.
    #[error(
        "{} is built for {binary}, the kernel's modules for {kernel}: pass --binary with a boot \
         program built for {kernel} (`make static-arm64` builds target/static-arm64/rootstock-boot)",
        path.display()
    )]
    WrongMachine { path: PathBuf, binary: Machine, kernel: Machine },
    /// A glob in a module set that matches no module.
    #[error("{}: {pattern} matches no module", list.display())]
    NoMatch { pattern: String, list: PathBuf },
    #[error("writing {}: {errno}", path.display())]
    Write { path: PathBuf, errno: Errno },
    /// The compressor failed, or its output did not unpack to the archive.
    #[error("compressing the archive: {0}")]
    Compress(String),
    /// A firmware file that is not a regular file, or too large.
    #[error("reading the firmware file {0}")]
    Firmware(rootstock_core::confine::ReadError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// The configuration to copy cannot be used: the image would not boot.
    #[error("the configuration the boot would read: {0}")]
    Config(#[from] rootstock_core::config::ConfigError),
    /// `composefs.enabled = signed` with no key to copy: the image could
    /// boot nothing.
    #[error("composefs.enabled = signed, but the signing key {} {problem}: the image could boot no deployment", path.display())]
    NoKey { path: PathBuf, problem: String },
}

fn show_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// The file of a module set: `set` itself when it holds a `/`, else the
/// first `<dir>/<set>.list`.
pub fn find_list(set: &str, dirs: &[PathBuf]) -> Result<PathBuf, MkError> {
    if set.contains('/') {
        return Ok(set.into());
    }
    dirs.iter()
        .map(|d| d.join(format!("{set}.list")))
        .find(|p| p.is_file())
        .ok_or_else(|| MkError::NoModuleSet { set: set.into(), looked_in: dirs.to_vec() })
}

/// The running kernel's release, e.g. `6.1.0-56-amd64`.
pub fn running_kver() -> String {
    rustix::system::uname().release().to_string_lossy().into_owned()
}

fn read_file(what: &'static str, path: &Path) -> Result<(Vec<u8>, u32), MkError> {
    let read = |e: std::io::Error| MkError::Read { what, path: path.into(), errno: Errno::from_io(&e) };
    let md = std::fs::metadata(path).map_err(read)?;
    if !md.is_file() {
        return Err(MkError::NotAFile { what, path: path.into() });
    }
    let bytes = std::fs::read(path).map_err(read)?;
    Ok((bytes, md.permissions().mode() & 0o7777))
}

/// A dynamically linked /init cannot start in an initramfs without its
/// libraries: say so (it may still be wanted, with the libraries as extras).
fn warn_if_dynamic(bytes: &[u8], path: &Path) {
    if let Ok(elf) = goblin::elf::Elf::parse(bytes)
        && let Some(interp) = elf.interpreter
    {
        log::warn!(
            "{} is dynamically linked ({interp}): /init will not start unless its libraries are \
             added with --extra; build the static binary with `make`",
            path.display()
        );
    }
}

/// Build the image. Nothing is written.
pub fn build(opts: &Options) -> Result<Image, MkError> {
    let kver = opts.kver.clone().unwrap_or_else(running_kver);
    let mut tree = ModuleTree::open(&opts.modules_dir.join(&kver), &kver)?;
    // The target's machine, whatever the host's: module sets have
    // architecture sections, and /init must run on it.
    let machine = tree.machine();
    let (mut roots, builtin) = resolve_names(&tree, requested_names(opts, machine)?)?;
    // efivarfs, which PID 1 mounts on a UEFI machine to read systemd-boot's
    // counter (docs/counting.md), in every image with modules, when this
    // kernel has it as a module (Debian's do); built in, or absent (a
    // kernel without EFI), nothing is added.
    if !roots.is_empty() && tree.path(EFIVARFS).is_some() && !roots.iter().any(|r| r == EFIVARFS) {
        roots.push(EFIVARFS.into());
    }
    let order = tree.closure(&roots)?;
    let mut entries = init_entries(&opts.binary, machine)?;
    let (module_files, index_entries) = module_files(&mut tree, &order)?;
    entries.extend(module_files);
    let (index, index_file) = module_index(&kver, index_entries)?;
    entries.push(index_file);
    let (firmware, missing_firmware) = find_firmware(&mut tree, &order, opts.firmware_dir.as_deref())?;
    entries.extend(firmware_files(&firmware)?);
    entries.extend(config_files(opts.config_root.as_deref())?);
    entries.extend(extra_files(&opts.extras)?);
    let (compression, compression_why) = choose_compression(opts, &kver);
    let archive = cpio::write_newc(&entries)?;
    let cpio_len = archive.len();
    let bytes = compress(archive, compression).map_err(MkError::Compress)?;
    Ok(Image {
        bytes,
        cpio_len,
        compression,
        compression_why,
        kver,
        machine,
        modules: order,
        builtin,
        index,
        firmware,
        missing_firmware,
    })
}

/// The module PID 1 needs to read systemd-boot's `LoaderBootCountPath`.
pub const EFIVARFS: &str = "efivarfs";

/// The module names asked for, each with where it was asked for (the
/// module set's file, or `--add-module`): the set's names for `machine`,
/// then `add_modules`.
fn requested_names(opts: &Options, machine: Option<Machine>) -> Result<Vec<(String, PathBuf)>, MkError> {
    let mut wanted = Vec::new();
    if let Some(set) = &opts.module_set {
        let list = find_list(set, &opts.list_dirs)?;
        let (text, _) = read_file("the module set", &list)?;
        let names = parse_list(&String::from_utf8_lossy(&text), machine)
            .map_err(|source| MkError::BadList { list: list.clone(), source })?;
        wanted.extend(names.into_iter().map(|n| (n, list.clone())));
    }
    wanted.extend(opts.add_modules.iter().map(|n| (n.clone(), PathBuf::from("--add-module"))));
    Ok(wanted)
}

/// The requested names as modules of `tree` (a glob: every module it
/// matches), and, sorted, those built into the kernel. A name that is
/// neither, or a glob that matches nothing, is an error.
fn resolve_names(
    tree: &ModuleTree,
    wanted: Vec<(String, PathBuf)>,
) -> Result<(Vec<String>, Vec<String>), MkError> {
    let mut roots = Vec::new();
    let mut builtin = Vec::new();
    for (name, list) in wanted {
        if name.contains(['*', '?', '[']) {
            let matched: Vec<String> =
                tree.names().filter(|m| modules::alias_matches(&name, m)).map(str::to_string).collect();
            if matched.is_empty() {
                return Err(MkError::NoMatch { pattern: name, list });
            }
            roots.extend(matched);
        } else if tree.path(&name).is_some() {
            roots.push(modules::normalize(&name));
        } else if tree.is_builtin(&name) {
            builtin.push(modules::normalize(&name));
        } else {
            return Err(ModError::NotFound { name, dir: tree.dir().into() }.into());
        }
    }
    builtin.sort();
    builtin.dedup();
    Ok((roots, builtin))
}

/// `/init` (the boot program at `binary`, which must be built for the
/// kernel's `machine`), the mount points and `/dev/console`.
fn init_entries(binary: &Path, machine: Option<Machine>) -> Result<Vec<Entry>, MkError> {
    let (init, _) = read_file("the /init binary", binary)?;
    // (an /init that is not ELF, a script, is the caller's business)
    if let (Some(kernel), Some(built_for)) = (machine, Machine::of_elf(&init))
        && kernel != built_for
    {
        return Err(MkError::WrongMachine { path: binary.into(), binary: built_for, kernel });
    }
    warn_if_dynamic(&init, binary);
    Ok(vec![
        Entry::file("init", 0o755, init),
        Entry::dir("dev", 0o755),
        Entry::char_dev("dev/console", 0o600, 5, 1),
        Entry::dir("proc", 0o555),
        Entry::dir("sys", 0o555),
        Entry::dir("run", 0o755),
        Entry::dir("sysroot", 0o755),
    ])
}

/// The module files of `order`, uncompressed, under `lib/modules/<kver>/`,
/// and their index entries.
fn module_files(tree: &mut ModuleTree, order: &[String]) -> Result<(Vec<Entry>, Vec<IndexEntry>), MkError> {
    let included: BTreeSet<String> = order.iter().cloned().collect();
    let mut files = Vec::new();
    let mut index_entries = Vec::new();
    for name in order {
        let entry = tree.index_entry(name, &included)?;
        let rel = tree.path(name).unwrap_or_default();
        let (bytes, _) = modules::read_module(&tree.dir().join(rel))?;
        files.push(Entry::file(&format!("lib/modules/{}/{}", tree.kver(), entry.path), 0o644, bytes));
        index_entries.push(entry);
    }
    Ok((files, index_entries))
}

/// The module index PID 1 reads, and its file
/// `lib/modules/<kver>/`[`modules::INDEX_FILE`].
fn module_index(kver: &str, entries: Vec<IndexEntry>) -> Result<(Index, Entry), MkError> {
    let index = Index::new(kver, entries).map_err(ModError::from)?;
    let file = Entry::file(
        &format!("lib/modules/{kver}/{}", modules::INDEX_FILE),
        0o644,
        index.render().into_bytes(),
    );
    Ok((index, file))
}

/// The firmware files that the modules of `order` name, found in `dir`
/// (None: no firmware), and those missing, each warned about.
fn find_firmware(
    tree: &mut ModuleTree,
    order: &[String],
    dir: Option<&Path>,
) -> Result<(Vec<firmware::Found>, Vec<firmware::Missing>), MkError> {
    let Some(dir) = dir else { return Ok((Vec::new(), Vec::new())) };
    let mut wanted = Vec::new();
    for name in order {
        wanted.push((name.clone(), tree.info(name)?.firmware.clone()));
    }
    let (found, missing) = firmware::find(&wanted, dir, tree.kver());
    for m in &missing {
        log::warn!("module {}: firmware {} {}: not included", m.module, m.name, m.why);
    }
    Ok((found, missing))
}

/// The found firmware files, read.
fn firmware_files(found: &[firmware::Found]) -> Result<Vec<Entry>, MkError> {
    found
        .iter()
        .map(|f| {
            let bytes = firmware::read(f).map_err(MkError::Firmware)?;
            Ok(Entry::file(&f.dest, 0o644, bytes))
        })
        .collect()
}

/// The extra files, read, with their host files' permission bits.
fn extra_files(extras: &[Extra]) -> Result<Vec<Entry>, MkError> {
    extras
        .iter()
        .map(|extra| {
            let (bytes, mode) = read_file("the extra file", &extra.host)?;
            Ok(Entry::file(&extra.dest, mode, bytes))
        })
        .collect()
}

/// The configuration the boot reads, from `config_root`: each of the files
/// it looks up that exists there, at the same path, and the composefs
/// signing key the configuration names. Checked as the boot would read
/// it: a configuration the boot would refuse fails the build.
fn config_files(config_root: Option<&Path>) -> Result<Vec<Entry>, MkError> {
    use rootstock_core::config::{Config, OSTREE_SEARCH_PATH, SEARCH_PATH};
    let Some(root) = config_root else { return Ok(vec![]) };
    let (config, _) = Config::load(root, None)?;
    let mut entries = Vec::new();
    let mut copy = |rel: &str| -> Result<bool, MkError> {
        let host = root.join(rel.trim_start_matches('/'));
        if std::fs::symlink_metadata(&host).is_err() {
            return Ok(false);
        }
        let (bytes, _) = read_file("the configuration file", &host)?;
        entries.push(Entry::file(rel.trim_start_matches('/'), 0o644, bytes));
        Ok(true)
    };
    for rel in OSTREE_SEARCH_PATH.iter().chain(SEARCH_PATH.iter()) {
        copy(rel)?;
    }
    let c = &config.composefs;
    // Where the boot looks for it: `..` stops at the config root.
    let key_file = c.key_file();
    let key = key_file.strip_prefix(root).unwrap_or(&key_file).to_string_lossy().into_owned();
    let copied = copy(&key)?;
    if c.policy.signed && !copied {
        return Err(MkError::NoKey { path: c.key_file(), problem: "is missing".into() });
    }
    Ok(entries)
}

/// `--compress`, else the kernel's default; and why.
fn choose_compression(opts: &Options, kver: &str) -> (Compression, String) {
    match opts.compress {
        Some(c) => (c, "--compress".to_string()),
        None => default_for_kernel(&opts.modules_dir, kver),
    }
}

#[derive(FromArgs, Debug)]
/// Write rootstock's own initramfs: the boot program (rootstock-boot) as /init, the kernel
/// modules of a module set with their dependencies, and extra files.
#[argh(subcommand, name = "mkinitramfs")]
pub struct MkinitramfsArgs {
    /// kernel version (default: the running kernel)
    #[argh(option)]
    pub kver: Option<String>,
    /// directory holding KVER/ with the kernel's modules (default /lib/modules)
    #[argh(option, default = "PathBuf::from(\"/lib/modules\")")]
    pub modules_dir: PathBuf,
    /// module set: NAME (NAME.list in the list directories), a path, or
    /// "none" (default generic; none with --host)
    #[argh(option)]
    pub modules: Option<String>,
    /// directory of module sets, may repeat (default
    /// /etc/rootstock/initramfs, then /usr/lib/rootstock/initramfs)
    #[argh(option)]
    pub list_dir: Vec<PathBuf>,
    /// one more module by name, may repeat
    #[argh(option)]
    pub add_module: Vec<String>,
    /// the boot program to install as /init (default: rootstock-boot beside
    /// this program, else /usr/lib/rootstock/rootstock-boot)
    #[argh(option)]
    pub binary: Option<PathBuf>,
    /// an extra file HOST[:PATH], e.g. /bin/busybox:/bin/busybox; may repeat
    #[argh(option)]
    pub extra: Vec<Extra>,
    /// compression: zstd, xz, gzip or none (default: the first of zstd, xz,
    /// gzip that the kernel's config enables, from KVER/config in the
    /// modules directory or /boot/config-KVER; gzip without a config)
    #[argh(option)]
    pub compress: Option<Compression>,
    /// where the modules' firmware= files are looked up (default
    /// /lib/firmware; "none": no firmware)
    #[argh(option, default = "PathBuf::from(firmware::FIRMWARE_DIR)")]
    pub firmware_dir: PathBuf,
    /// host-only: the modules on the way to this machine's root filesystem
    /// (drivers of the root device and the devices above it in sysfs, and
    /// the filesystem's), printed with the reason for each
    #[argh(switch)]
    pub host: bool,
    /// with --host: where sysfs is (default /sys), e.g. a captured tree
    #[argh(option, default = "PathBuf::from(\"/sys\")")]
    pub sysfs: PathBuf,
    /// with --host: the mount table to find the root in (default
    /// /proc/self/mountinfo)
    #[argh(option, default = "PathBuf::from(\"/proc/self/mountinfo\")")]
    pub mountinfo: PathBuf,
    /// with --host: the root device instead of the mount of /: MAJ:MIN, a
    /// /dev path, or a name in /sys/class/block
    #[argh(option)]
    pub root_device: Option<String>,
    /// with --host: the root filesystem's type (default: from the mount
    /// table)
    #[argh(option)]
    pub root_fstype: Option<String>,
    /// where the configuration the boot reads is copied from: rootstock.conf
    /// and ostree's prepare-root.conf (etc/ and usr/lib/), and the composefs
    /// signing key (default /; "none": no configuration)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    pub config_root: PathBuf,
    /// where to write the initramfs
    #[argh(positional)]
    pub output: PathBuf,
}

/// Where the boot program is installed.
pub const INSTALLED_BOOT_BINARY: &str = "/usr/lib/rootstock/rootstock-boot";

/// `rootstock-boot` next to this program (a build tree: `target/release/`),
/// else the installed one.
pub fn default_boot_binary() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|me| Some(me.parent()?.join("rootstock-boot")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from(INSTALLED_BOOT_BINARY),
    }
}

/// Run `rootstock mkinitramfs`: build, write, print a summary.
pub fn run(args: MkinitramfsArgs) -> Result<(), MkError> {
    rootstock_core::logger::init(false);
    let set = args.modules.unwrap_or_else(|| if args.host { "none" } else { "generic" }.into());
    let mut add_modules = args.add_module;
    if args.host {
        let host = HostOptions {
            sysfs: args.sysfs,
            mountinfo: args.mountinfo,
            root_device: args.root_device,
            root_fstype: args.root_fstype,
        };
        let kver = args.kver.clone().unwrap_or_else(running_kver);
        let mut tree = ModuleTree::open(&args.modules_dir.join(&kver), &kver)?;
        let picked = hostonly::pick(&host, &mut tree)?;
        rootstock_core::logger::stdout(&picked.describe());
        add_modules.extend(picked.modules());
    }
    let opts = Options {
        kver: args.kver,
        modules_dir: args.modules_dir,
        module_set: (set != "none").then_some(set),
        list_dirs: if args.list_dir.is_empty() {
            LIST_DIRS.iter().map(PathBuf::from).collect()
        } else {
            args.list_dir
        },
        add_modules,
        binary: args.binary.unwrap_or_else(default_boot_binary),
        extras: args.extra,
        compress: args.compress,
        firmware_dir: (args.firmware_dir != Path::new("none")).then_some(args.firmware_dir),
        config_root: (args.config_root != Path::new("none")).then_some(args.config_root),
    };
    let image = build(&opts)?;
    crate::output::write(&args.output, &image.bytes)
        .map_err(|crate::output::WriteFailed { path, errno }| MkError::Write { path, errno })?;
    rootstock_core::logger::stdout(&format!(
        "{}: {} bytes {} ({} uncompressed), kernel {}{}, {} modules\n",
        args.output.display(),
        image.bytes.len(),
        image.compression,
        image.cpio_len,
        image.kver,
        image.machine.map(|m| format!(" ({m})")).unwrap_or_default(),
        image.modules.len()
    ));
    rootstock_core::logger::stdout(&format!(
        "compression {}: {}\n",
        image.compression, image.compression_why
    ));
    if !image.builtin.is_empty() {
        rootstock_core::logger::stdout(&format!(
            "built into the kernel, not included: {}\n",
            image.builtin.join(" ")
        ));
    }
    if !image.firmware.is_empty() {
        let names: Vec<String> =
            image.firmware.iter().map(|f| format!("{} ({})", f.dest, f.module)).collect();
        rootstock_core::logger::stdout(&format!("firmware: {}\n", names.join(" ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::{fake_elf, modules_dir, set_opts};
    use rootstock_core::modules::modules_for;
    use std::process::Command;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rootstock-mkinitramfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn finding_a_list() {
        let dir = temp_dir("lists");
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("qemu.list"), "x\n").unwrap();
        std::fs::write(a.join("mine.list"), "x\n").unwrap();
        std::fs::write(b.join("mine.list"), "x\n").unwrap();
        let dirs = vec![a.clone(), b.clone()];
        assert_eq!(find_list("qemu", &dirs), Ok(b.join("qemu.list")));
        assert_eq!(find_list("mine", &dirs), Ok(a.join("mine.list")));
        assert_eq!(find_list("./x/y.list", &dirs), Ok(PathBuf::from("./x/y.list")));
        let err = find_list("nope", &dirs).unwrap_err().to_string();
        assert_eq!(err, format!("no module set \"nope\": no nope.list in {}, {}", a.display(), b.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn extras() {
        // (argument, Some((host, dest)) or None for an error)
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("/bin/busybox:/bin/busybox", Some(("/bin/busybox", "bin/busybox"))),
            ("/usr/bin/busybox:bin/sh", Some(("/usr/bin/busybox", "bin/sh"))),
            ("/sbin/cryptsetup", Some(("/sbin/cryptsetup", "sbin/cryptsetup"))),
            ("", None),
            (":/x", None),
            ("/x:", None),
            ("/x:/", None),
        ];
        for (arg, want) in cases {
            let got = arg.parse::<Extra>().map(|e| (e.host, e.dest)).ok();
            let want = want.map(|(h, d)| (PathBuf::from(h), d.to_string()));
            assert_eq!(got, want, "{arg:?}");
        }
    }

    #[test]
    fn command_line() {
        let a = MkinitramfsArgs::from_args(&["mkinitramfs"], &["/boot/initrd.img"]).unwrap();
        assert_eq!(a.output, Path::new("/boot/initrd.img"));
        assert_eq!((a.modules.as_deref(), a.compress, a.kver), (None, None, None));
        assert_eq!((a.host, a.sysfs.as_path(), a.root_device), (false, Path::new("/sys"), None));
        assert_eq!(a.firmware_dir, Path::new("/lib/firmware"));
        assert_eq!(a.binary, None);
        assert_eq!(a.modules_dir, Path::new("/lib/modules"));
        let a = MkinitramfsArgs::from_args(
            &["mkinitramfs"],
            &[
                "--kver",
                "6.1.0-56-amd64",
                "--modules",
                "qemu",
                "--list-dir",
                "initramfs",
                "--add-module",
                "e1000",
                "--extra",
                "/bin/busybox:/bin/sh",
                "--extra",
                "/bin/busybox",
                "--compress",
                "none",
                "--binary",
                "target/release/rootstock",
                "out.img",
            ],
        )
        .unwrap();
        assert_eq!(a.kver.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!((a.modules.as_deref(), a.compress), (Some("qemu"), Some(Compression::None)));
        assert_eq!(a.list_dir, [Path::new("initramfs")]);
        assert_eq!(a.add_module, ["e1000"]);
        assert_eq!(a.extra.iter().map(|e| e.dest.as_str()).collect::<Vec<_>>(), ["bin/sh", "bin/busybox"]);
        for bad in [&["--compress", "lz4", "o"][..], &["--extra", "", "o"], &[]] {
            assert!(MkinitramfsArgs::from_args(&["mkinitramfs"], bad).is_err(), "{bad:?}");
        }
    }

    /// A fake kernel: a module tree with modules.builtin, and a dummy init.
    fn fake_kernel(tag: &str, modules: &[(&str, &str)]) -> (PathBuf, Options) {
        let dir = temp_dir(tag);
        let kdir = dir.join("modules/1.0-test");
        std::fs::create_dir_all(kdir.join("kernel")).unwrap();
        for (name, modinfo) in modules {
            let elf = fake_elf(&[(".modinfo", modinfo.replace(';', "\0").as_bytes())]);
            std::fs::write(kdir.join(format!("kernel/{name}.ko")), elf).unwrap();
        }
        std::fs::write(kdir.join("modules.builtin"), "kernel/drivers/input/serio/i8042.ko\n").unwrap();
        std::fs::write(dir.join("init"), "#!/bin/sh\n").unwrap();
        let opts = Options {
            kver: Some("1.0-test".into()),
            modules_dir: dir.join("modules"),
            module_set: None,
            list_dirs: vec![dir.clone()],
            binary: dir.join("init"),
            compress: Some(Compression::None),
            ..Options::default()
        };
        (dir, opts)
    }

    /// efivarfs joins every image with modules when the kernel has it as a
    /// module; an image without modules, or a kernel without it, gets none.
    #[test]
    fn efivarfs_comes_along_where_the_kernel_has_it() {
        let (_, with_it) = fake_kernel("efi", &[("ok", "name=ok"), ("efivarfs", "name=efivarfs")]);
        let ok = Options { add_modules: vec!["ok".into()], ..with_it.clone() };
        assert_eq!(build(&ok).unwrap().modules, ["ok", "efivarfs"]);
        assert!(build(&with_it).unwrap().modules.is_empty(), "no modules asked for");
        let (_, without) = fake_kernel("noefi", &[("ok", "name=ok")]);
        let ok = Options { add_modules: vec!["ok".into()], ..without };
        assert_eq!(build(&ok).unwrap().modules, ["ok"]);
    }

    #[test]
    fn build_errors() {
        let (dir, base) = fake_kernel(
            "errors",
            &[
                ("a", "name=a;depends=b"),
                ("b", "name=b;depends=a"),
                ("ok", "name=ok"),
                ("dash-y", "name=dash_y"),
            ],
        );
        std::fs::write(dir.join("cycle.list"), "ok\na\n").unwrap();
        std::fs::write(dir.join("unknown.list"), "ok\n# fine\nno_such_module\n").unwrap();
        std::fs::write(dir.join("glob.list"), "zz*\n").unwrap();
        std::fs::write(dir.join("notafile"), "").unwrap();
        let with = |f: &dyn Fn(&mut Options)| {
            let mut o = base.clone();
            f(&mut o);
            build(&o).map(|_| ()).unwrap_err().to_string()
        };
        let cases: &[(String, String)] = &[
            (
                with(&|o| o.module_set = Some("unknown".into())),
                format!(
                    "module no_such_module: neither a module file under {} nor built into the \
                     kernel (modules.builtin)",
                    dir.join("modules/1.0-test").display()
                ),
            ),
            (with(&|o| o.module_set = Some("cycle".into())), "module dependency cycle: a -> b -> a".into()),
            (
                with(&|o| o.module_set = Some("glob".into())),
                format!("{}: zz* matches no module", dir.join("glob.list").display()),
            ),
            (
                with(&|o| o.kver = Some("2.0".into())),
                format!(
                    "no modules for kernel 2.0: {}: ENOENT 2 (No such file or directory) (choose \
                     the kernel with --kver and --modules-dir)",
                    dir.join("modules/2.0").display()
                ),
            ),
            (
                with(&|o| o.binary = dir.join("missing")),
                format!(
                    "reading the /init binary {}: ENOENT 2 (No such file or directory)",
                    dir.join("missing").display()
                ),
            ),
            (
                with(&|o| o.extras = vec![Extra { host: dir.clone(), dest: "x".into() }]),
                format!("the extra file {} is not a regular file", dir.display()),
            ),
            (
                with(&|o| o.extras = vec![Extra { host: dir.join("notafile"), dest: "init".into() }]),
                "cpio: init is given twice".into(),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }

        // Built-in names are skipped and reported; '-' and '_' are the same;
        // globs select by name.
        let mut o = base.clone();
        o.add_modules = vec!["i8042".into(), "dash-y".into(), "o?".into()];
        let image = build(&o).unwrap();
        assert_eq!(image.modules, ["dash_y", "ok"]);
        assert_eq!(image.builtin, ["i8042"]);
        let listing = String::from_utf8(rootstock_core::testutil::run_piped(
            Command::new("cpio").args(["-t", "--quiet"]),
            &image.bytes,
        ))
        .unwrap();
        let files: Vec<&str> = listing.lines().collect();
        assert_eq!(
            files,
            [
                "dev",
                "dev/console",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/1.0-test",
                "lib/modules/1.0-test/kernel",
                "lib/modules/1.0-test/kernel/dash-y.ko",
                "lib/modules/1.0-test/kernel/ok.ko",
                "lib/modules/1.0-test/rootstock.modules",
                "proc",
                "run",
                "sys",
                "sysroot",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The unpacked arm64 Debian kernel (`make deps` fetches it).
    fn arm64_modules_dir() -> (PathBuf, String) {
        crate::modules::test_support::modules_dir_for("arm64").unwrap_or_else(|| {
            panic!(
                "no arm64 Debian kernel unpacked: run `dpkg --add-architecture arm64 && apt-get update && \
                 tests/fixtures/fetch-kernel.sh {}/.cache/kernel arm64` (make deps does)",
                env!("CARGO_MANIFEST_DIR")
            )
        })
    }

    #[test]
    fn the_configuration_the_boot_reads_goes_into_the_image() {
        let root = temp_dir("config");
        let write = |rel: &str, text: &str| {
            std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
            std::fs::write(root.join(rel), text).unwrap();
        };
        let names = |r: &Path| -> Result<Vec<String>, String> {
            config_files(Some(r)).map(|e| e.into_iter().map(|e| e.path).collect()).map_err(|e| e.to_string())
        };
        assert_eq!(names(&root), Ok(vec![]), "nothing to copy");
        assert_eq!(config_files(None).unwrap().len(), 0);
        write(
            "usr/lib/ostree/prepare-root.conf",
            "[composefs]\nenabled = signed\nkeypath = /etc/ostree/k.pub\n",
        );
        write("etc/rootstock/rootstock.conf", "[boot-counting]\ntries = 3\n");
        // signed with no key: an image that could boot nothing is refused.
        let err = names(&root).unwrap_err();
        assert!(err.contains("signing key") && err.contains("etc/ostree/k.pub is missing"), "{err}");
        write("etc/ostree/k.pub", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n");
        // The path goes through `..` (which stops at the config root) to the same key.
        write(
            "usr/lib/ostree/prepare-root.conf",
            "[composefs]\nenabled = signed\nkeypath = /../../etc/ostree/k.pub\n",
        );
        assert_eq!(
            names(&root),
            Ok(vec![
                "usr/lib/ostree/prepare-root.conf".to_string(),
                "etc/rootstock/rootstock.conf".to_string(),
                "etc/ostree/k.pub".to_string()
            ])
        );
        // A configuration the boot would refuse fails the build, naming it.
        write("etc/rootstock/rootstock.conf", "[boot-counting]\ntries = many\n");
        let err = names(&root).unwrap_err();
        assert!(err.contains("etc/rootstock/rootstock.conf") && err.contains("tries"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn repo_lists_resolve_on_the_debian_kernels() {
        for ((dir, kver), machine) in
            [(modules_dir(), Machine::X86_64), (arm64_modules_dir(), Machine::Aarch64)]
        {
            let mut tree = ModuleTree::open(&dir, &kver).unwrap();
            assert_eq!(tree.machine(), Some(machine), "{kver}");
            for set in ["qemu", "generic"] {
                let opts = set_opts((dir.clone(), kver.clone()), set, Path::new("init"));
                let names = requested_names(&opts, Some(machine)).unwrap();
                assert!(names.len() >= 8, "{set}: {names:?}");
                let (roots, _) =
                    resolve_names(&tree, names.clone()).unwrap_or_else(|e| panic!("{kver} {set}: {e}"));
                let order = tree.closure(&roots).unwrap();
                assert!(order.len() >= names.len() / 2, "{kver} {set}: {order:?}");
            }
        }
    }

    /// On an x86_64 host, an image for Debian's arm64 kernel: its own
    /// drivers (virtio-mmio, platform AHCI, SD/eMMC host controllers, USB
    /// host controllers on the SoC), none of the PC's, and only an aarch64
    /// /init.
    #[test]
    fn arm64_images_take_arm64_drivers_and_an_arm64_init() {
        let tmp = temp_dir("arm64");
        let init = tmp.join("init");
        // An ELF header for aarch64 (e_machine 183) and one for x86_64 (62).
        let elf = |machine: u16| {
            let mut h = vec![0u8; 64];
            h[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
            h[16] = 2; // ET_EXEC
            h[18..20].copy_from_slice(&machine.to_le_bytes());
            h[20] = 1;
            h[52] = 64; // e_ehsize
            h
        };
        std::fs::write(&init, elf(183)).unwrap();
        let opts = Options {
            compress: Some(Compression::None),
            firmware_dir: None,
            ..set_opts(arm64_modules_dir(), "generic", &init)
        };
        let image = build(&opts).unwrap();
        assert_eq!(image.machine, Some(Machine::Aarch64));
        for m in [
            "virtio_mmio",
            "ahci_platform",
            "sdhci_of_arasan",
            "sdhci_of_dwcmshc",
            "dw_mmc_rockchip",
            "sdhci_iproc",
            "xhci_plat_hcd",
            "nvme",
            "ahci",
            "usb_storage",
            "uas",
            "virtio_blk",
            "ext4",
        ] {
            assert!(image.modules.iter().any(|n| n == m), "{m} missing: {:?}", image.modules);
        }
        for pc_only in ["isci", "vmw_pvscsi", "uhci_hcd", "i8042"] {
            assert!(!image.modules.iter().any(|n| n == pc_only), "{pc_only} in an arm64 image");
        }

        std::fs::write(&init, elf(62)).unwrap();
        let e = build(&opts).unwrap_err();
        assert_eq!(
            e,
            MkError::WrongMachine { path: init.clone(), binary: Machine::X86_64, kernel: Machine::Aarch64 }
        );
        assert!(e.to_string().contains("is built for x86_64, the kernel's modules for aarch64"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn qemu_image_from_the_debian_kernel() {
        let tmp = temp_dir("qemu");
        let init = tmp.join("init");
        std::fs::write(&init, b"\x7fELF dummy init for the tests\n").unwrap();
        std::fs::write(tmp.join("busybox"), b"dummy busybox").unwrap();
        std::fs::set_permissions(tmp.join("busybox"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut opts = set_opts(modules_dir(), "qemu", &init);
        opts.extras = vec![format!("{}:/bin/busybox", tmp.join("busybox").display()).parse().unwrap()];
        let kver = opts.kver.clone().unwrap();
        let (mdir, _) = modules_dir();

        // The default follows the Debian kernel's config (CONFIG_RD_ZSTD=y
        // in boot/config-KVER beside lib/modules).
        let zst = build(&opts).unwrap();
        assert_eq!(zst.compression, Compression::Zstd, "{}", zst.compression_why);
        assert!(zst.compression_why.starts_with("CONFIG_RD_ZSTD in "), "{}", zst.compression_why);
        let plain = build(&Options { compress: Some(Compression::None), ..opts.clone() }).unwrap();
        assert_eq!(plain.bytes.len(), zst.cpio_len);
        let gz_opts = Options { compress: Some(Compression::Gzip), ..opts.clone() };
        let gz = build(&gz_opts).unwrap();
        assert_eq!(build(&gz_opts).unwrap().bytes, gz.bytes, "two builds differ");
        let xz = build(&Options { compress: Some(Compression::Xz), ..opts.clone() }).unwrap();
        for (image, tool) in [(&gz, "gzip"), (&zst, "zstd"), (&xz, "xz")] {
            if Command::new(tool).arg("--version").output().is_ok() {
                let out = rootstock_core::testutil::run_piped(Command::new(tool).arg("-dc"), &image.bytes);
                assert!(out == plain.bytes, "{tool}: unpacks to something else");
            }
        }
        eprintln!(
            "qemu set, kernel {kver}: {} modules, {} bytes uncompressed, {} gzip, {} zstd, {} xz",
            gz.modules.len(),
            gz.cpio_len,
            gz.bytes.len(),
            zst.bytes.len(),
            xz.bytes.len()
        );
        for m in ["virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ext4", "jbd2", "xfs", "overlay"] {
            assert!(gz.modules.contains(&m.to_string()), "{m} missing: {:?}", gz.modules);
        }

        // What GNU cpio sees.
        let listing = String::from_utf8(rootstock_core::testutil::run_piped(
            Command::new("cpio").args(["-tv", "--quiet"]),
            &plain.bytes,
        ))
        .unwrap();
        let line = |path: &str| {
            listing
                .lines()
                .find(|l| l.split_whitespace().last() == Some(path))
                .unwrap_or_else(|| panic!("{path} not in:\n{listing}"))
                .to_string()
        };
        assert!(line("init").starts_with("-rwxr-xr-x"));
        assert!(line("dev/console").starts_with("crw-------"));
        assert!(line("bin/busybox").starts_with("-rwxr-xr-x"));
        for d in ["dev", "proc", "sys", "run", "sysroot"] {
            assert!(line(d).starts_with('d'), "{d}");
        }
        line(&format!("lib/modules/{kver}/kernel/drivers/block/virtio_blk.ko"));

        // Extracted, the modules are the kernel's files and the index reads back.
        let out = tmp.join("root");
        std::fs::create_dir_all(&out).unwrap();
        // Extracting a device node needs root (cpio's own tests do it): leave it out.
        rootstock_core::testutil::run_piped(
            Command::new("cpio")
                .args(["-idm", "--quiet", "--no-absolute-filenames", "--nonmatching", "dev/console"])
                .current_dir(&out),
            &plain.bytes,
        );
        assert_eq!(std::fs::read(out.join("init")).unwrap(), std::fs::read(&init).unwrap());
        let index_text =
            std::fs::read_to_string(out.join(format!("lib/modules/{kver}/rootstock.modules"))).unwrap();
        let index = Index::parse(&index_text).unwrap();
        assert_eq!(index.kver(), kver);
        assert_eq!(index.entries().count(), gz.modules.len());
        for e in index.entries() {
            let inside = std::fs::read(out.join(format!("lib/modules/{kver}/{}", e.path))).unwrap();
            assert!(inside == std::fs::read(mdir.join(&e.path)).unwrap(), "{} differs", e.path);
        }
        let boot = modules_for(
            &[
                "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00".to_string(),
                "virtio:d00000002v00001AF4".to_string(),
            ],
            &index,
        );
        assert_eq!(boot.iter().rev().take(2).collect::<Vec<_>>(), ["virtio_blk", "virtio_pci"], "{boot:?}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
