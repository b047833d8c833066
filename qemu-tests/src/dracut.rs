//! Initramfs images made by the host's dracut for the cached kernel,
//! cached in `<cache>/initramfs/` by a key over everything that shapes them.
//!
//! A spec naming the `rootstock` module gets it from this repository
//! (`dracut-module/98rootstock`) and rootstock's static boot program
//! (`$ROOTSTOCK_BOOT_BIN`, else `make static`'s output). dracut 059 reads
//! its modules from `$dracutbasedir/modules.d` (default /usr/lib/dracut), so
//! such an image is built with a temporary copy of the host's /usr/lib/dracut
//! in which the repository's module replaces any installed `NNrootstock`
//! (the rootstock package's 98rootstock), named by the `dracutbasedir`
//! environment variable. The module installs the boot program that
//! `ROOTSTOCK_BOOT_BIN` names (see its module-setup.sh): dracut gets that
//! variable set to the binary under test, whatever the caller's environment
//! holds. Nothing is installed on the host; the copy is removed after the
//! build.

use crate::kernel::Kernel;
use crate::util::{Error, Result, cache_dir, fnv1a, io, lock, repo_root, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host's dracut base directory (dracut 059's default `dracutbasedir`).
const HOST_DRACUT_BASE: &str = "/usr/lib/dracut";

/// The rootstock module in this repository.
const MODULE_DIR: &str = "dracut-module/98rootstock";

/// What to put in a dracut image. The host's dracut configuration
/// (/etc/dracut.conf.d, e.g. ostree-boot's) is ignored: only this counts.
#[derive(Clone, Debug, PartialEq)]
pub struct DracutSpec {
    /// dracut modules (`-m`); dependencies are added by dracut. `rootstock`
    /// is taken from this repository (see the module docs).
    pub modules: Vec<String>,
    /// The exact kernel drivers (`--drivers`; their dependencies follow).
    pub drivers: Vec<String>,
    /// `--compress` argument.
    pub compress: String,
    /// Anything else for the dracut command line.
    pub extra_args: Vec<String>,
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// The systemd modules of the smallest image that boots the test OS.
const SYSTEMD_MODULES: &str = "systemd systemd-initrd dracut-systemd udev-rules base fs-lib rootfs-block";

/// dracut's shell-based init (99base's init.sh and its hooks), no systemd.
const SHELL_MODULES: &str = "udev-rules base fs-lib rootfs-block";

impl DracutSpec {
    /// The baseline: Debian's dracut 059 with ostree-boot's `ostree` module,
    /// the smallest set that boots the test OS from virtio ext4. These eight
    /// are a closed set: naming fewer pulls the rest back in as dependencies,
    /// except base and rootfs-block, without which there is no sysroot.mount
    /// (emergency shell). `--fscks e2fsck` leaves out the xfs/btrfs/... fsck
    /// tools that `--no-hostonly` adds (12.7 → 11.4 MB).
    pub fn ostree_baseline() -> DracutSpec {
        DracutSpec::with_modules(&format!("{SYSTEMD_MODULES} ostree"))
    }

    /// The baseline's systemd image with rootstock's module instead of
    /// ostree's: `rootstock-prepare-root.service` lays out the deployment.
    pub fn rootstock() -> DracutSpec {
        DracutSpec::with_modules(&format!("{SYSTEMD_MODULES} rootstock"))
    }

    /// dracut's shell-based init (no systemd) with rootstock's pre-pivot hook.
    pub fn rootstock_no_systemd() -> DracutSpec {
        DracutSpec::with_modules(&format!("{SHELL_MODULES} rootstock"))
    }

    /// Both `ostree` and `rootstock` in the systemd image: rootstock's module
    /// masks ostree-prepare-root.service, so only rootstock runs.
    pub fn rootstock_with_ostree() -> DracutSpec {
        DracutSpec::with_modules(&format!("{SYSTEMD_MODULES} ostree rootstock"))
    }

    /// Both modules without systemd: Debian's `ostree` module installs only a
    /// systemd unit, which nothing starts here; rootstock's hook runs.
    pub fn rootstock_with_ostree_no_systemd() -> DracutSpec {
        DracutSpec::with_modules(&format!("{SHELL_MODULES} ostree rootstock"))
    }

    /// `modules` with the baseline's drivers, compression and fsck set.
    fn with_modules(modules: &str) -> DracutSpec {
        DracutSpec {
            modules: words(modules),
            drivers: words("virtio_pci virtio_blk ext4"),
            compress: "zstd".into(),
            extra_args: words("--fscks e2fsck"),
        }
    }

    /// Whether the image includes this repository's rootstock module.
    pub fn has_rootstock(&self) -> bool {
        self.modules.iter().any(|m| m == "rootstock")
    }
}

/// The files of the repository's module, sorted, with their contents.
fn module_files() -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let dir = repo_root().join(MODULE_DIR);
    let mut files = Vec::new();
    for e in io(std::fs::read_dir(&dir), "read", &dir)? {
        let path = e?.path();
        if path.is_file() {
            let data = io(std::fs::read(&path), "read", &path)?;
            files.push((path, data));
        }
    }
    files.sort();
    Ok(files)
}

/// What a rootstock image adds to the cache key: the binary's and the
/// module's contents.
fn rootstock_key(bin: &Path, module: &[(PathBuf, Vec<u8>)]) -> Result<String> {
    let data = io(std::fs::read(bin), "read", bin)?;
    let mut key = format!("rootstock {:016x}", fnv1a(&data));
    for (path, data) in module {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        key.push_str(&format!(" {name}={:016x}", fnv1a(data)));
    }
    Ok(key)
}

/// A temporary dracut base directory: a copy of the host's with the
/// repository's module instead of an installed one, removed when dropped.
struct RootstockBase {
    dir: PathBuf,
}

/// Whether `name` is a dracut module directory of the module `rootstock`
/// (`NNrootstock`: dracut drops the two-digit prefix).
fn is_rootstock_moddir(name: &str) -> bool {
    name.len() == 11 && name.as_bytes()[..2].iter().all(u8::is_ascii_digit) && name.ends_with("rootstock")
}

impl RootstockBase {
    fn new(dir: PathBuf, module: &[(PathBuf, Vec<u8>)]) -> Result<RootstockBase> {
        let _ = std::fs::remove_dir_all(&dir);
        io(std::fs::create_dir_all(&dir), "create", &dir)?;
        let base = RootstockBase { dir };
        // cp -a keeps the modes and the mtimes (--reproducible clamps the
        // image's mtimes to dracut-functions.sh's).
        run(Command::new("cp").arg("-a").arg(HOST_DRACUT_BASE).arg(base.dracutbasedir()))?;
        // An installed rootstock module (the package's 98rootstock) makes
        // way for the repository's.
        let modules = base.dracutbasedir().join("modules.d");
        for e in io(std::fs::read_dir(&modules), "read", &modules)? {
            let e = e?;
            if is_rootstock_moddir(&e.file_name().to_string_lossy()) {
                io(std::fs::remove_dir_all(e.path()), "remove", &e.path())?;
            }
        }
        let moddir = modules.join("98rootstock");
        io(std::fs::create_dir(&moddir), "create", &moddir)?;
        for (path, data) in module {
            let to = moddir.join(path.file_name().unwrap_or_default());
            io(std::fs::write(&to, data), "write", &to)?;
            let mode = io(std::fs::metadata(path), "stat", path)?.permissions();
            io(std::fs::set_permissions(&to, mode), "chmod", &to)?;
        }
        Ok(base)
    }

    fn dracutbasedir(&self) -> PathBuf {
        self.dir.join("dracut")
    }
}

impl Drop for RootstockBase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The image for `kernel` and `spec`, built on first use. The cache key
/// covers the kernel version, the spec and the versions of the Debian
/// packages that make the image (dracut-core, ostree-boot, systemd, udev),
/// and for a rootstock image the binary and the module files.
pub fn dracut_initramfs(kernel: &Kernel, spec: &DracutSpec) -> Result<PathBuf> {
    let packages = run(Command::new("dpkg-query").args([
        "-W",
        "-f=${Package}=${Version} ",
        "dracut-core",
        "ostree-boot",
        "systemd",
        "udev",
    ]))?;
    let rootstock = if spec.has_rootstock() {
        let (bin, module) = (crate::rootstock::boot_binary()?, module_files()?);
        let key = rootstock_key(&bin, &module)?;
        Some((bin, module, key))
    } else {
        None
    };
    // A spec without rootstock keeps the key it always had.
    let mut key_text = format!("{}\n{spec:?}\n{packages}", kernel.version);
    if let Some((_, _, k)) = &rootstock {
        key_text.push_str(&format!("\n{k}"));
    }
    let key = fnv1a(key_text.as_bytes());
    let dir = cache_dir().join("initramfs");
    let image = dir.join(format!("dracut-{}-{key:016x}.img", kernel.version));
    let _guard = lock("dracut")?;
    if image.exists() {
        return Ok(image);
    }
    let confdir = dir.join("empty-confdir");
    io(std::fs::create_dir_all(&confdir), "create", &confdir)?;
    let tmp = image.with_extension("tmp");
    let mut cmd = Command::new("dracut");
    cmd.args(["--force", "--quiet", "--no-hostonly", "--no-hostonly-cmdline", "--reproducible"])
        .args(["--no-early-microcode", "--conf", "/dev/null", "--confdir"])
        .arg(&confdir)
        .args(["--kver", &kernel.version, "--kmoddir"])
        .arg(kernel.moddir())
        // dracut wants each list as one space-separated argument
        .args(["-m", &spec.modules.join(" "), "--drivers", &spec.drivers.join(" ")])
        .args(["--compress", &spec.compress])
        .args(&spec.extra_args)
        .arg(&tmp);
    let _base = match &rootstock {
        Some((bin, module, _)) => {
            let base = RootstockBase::new(dir.join(format!(".rootstock-base-{key:016x}")), module)?;
            cmd.env("dracutbasedir", base.dracutbasedir()).env("ROOTSTOCK_BOOT_BIN", bin);
            Some(base)
        }
        None => {
            cmd.env_remove("ROOTSTOCK_BOOT_BIN");
            None
        }
    };
    run(&mut cmd)?;
    if let Some((bin, ..)) = &rootstock {
        check_contains_binary(&tmp, bin)?;
    }
    io(std::fs::rename(&tmp, &image), "rename to", &image)?;
    Ok(image)
}

/// Before an image is cached: it holds `/usr/lib/rootstock/rootstock-boot`
/// (what the module's install() installed), so a cache hit never serves an
/// image without it.
fn check_contains_binary(image: &Path, bin: &Path) -> Result<()> {
    let listing = run(Command::new("lsinitrd").arg(image))?;
    if !listing.lines().any(|l| l.ends_with(" usr/lib/rootstock/rootstock-boot")) {
        let _ = std::fs::remove_file(image);
        return Err(Error(format!(
            "dracut built {} without usr/lib/rootstock/rootstock-boot (binary {}); listing:\n{}",
            image.display(),
            bin.display(),
            crate::util::tail(&listing, 40)
        )));
    }
    Ok(())
}
