//! The harness's architecture dimension: what differs between an x86_64
//! guest (the default: `qemu-system-x86_64`, the host's own packages) and an
//! arm64 one (`qemu-system-aarch64 -M virt`, software emulation, Debian's
//! arm64 packages fetched with `apt-get download` into the cache).

use crate::util::{Result, cache_dir, err, io, lock, repo_root, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// A guest architecture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Arch {
    #[default]
    X86_64,
    Aarch64,
}

impl Arch {
    /// Debian's name: `amd64`, `arm64` (package architecture and kernel flavour).
    pub fn deb(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// What `uname -m` prints on such a machine.
    pub fn uname_m(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    pub fn qemu_system(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    /// The machine: the default PC for a direct kernel boot, q35 for OVMF's
    /// 4 MiB flash; arm64's `virt` board (PL011 UART, PCIe host bridge,
    /// virtio-mmio slots) with a Cortex-A57 (an ARMv8.0 core: `-cpu max`
    /// emulates pointer authentication, which makes TCG several times slower).
    pub fn machine_args(self, uefi: bool) -> &'static [&'static str] {
        match (self, uefi) {
            (Arch::X86_64, false) => &[],
            (Arch::X86_64, true) => &["-machine", "q35"],
            (Arch::Aarch64, _) => &["-machine", "virt", "-cpu", "cortex-a57"],
        }
    }

    /// The serial console prefix every harness command line starts with:
    /// the 8250 UART on a PC, the PL011 (`ttyAMA0`) on `virt`.
    pub fn console_args(self) -> &'static str {
        match self {
            Arch::X86_64 => "console=ttyS0 printk.time=1",
            Arch::Aarch64 => "console=ttyAMA0 printk.time=1",
        }
    }

    /// The static boot program for this architecture: `$ROOTSTOCK_BOOT_BIN`
    /// or `target/static/rootstock-boot` (`make static`);
    /// `$ROOTSTOCK_ARM64_BOOT_BIN` or `target/static-arm64/rootstock-boot`
    /// (`make static-arm64`).
    pub fn boot_binary(self) -> Result<PathBuf> {
        match self {
            Arch::X86_64 => static_binary("ROOTSTOCK_BOOT_BIN", "static", "rootstock-boot"),
            Arch::Aarch64 => static_binary("ROOTSTOCK_ARM64_BOOT_BIN", "static-arm64", "rootstock-boot"),
        }
    }

    /// The static host tool built for this architecture (what the test OS
    /// runs for `rootstock bless` and `status`). `mkinitramfs` always runs
    /// on the host, as the x86_64 one.
    pub fn host_binary(self) -> Result<PathBuf> {
        match self {
            Arch::X86_64 => static_binary("ROOTSTOCK_HOST_BIN", "static", "rootstock"),
            Arch::Aarch64 => static_binary("ROOTSTOCK_ARM64_HOST_BIN", "static-arm64", "rootstock"),
        }
    }

    /// A static busybox for the test OS: the host's `/bin/busybox` on
    /// x86_64 (Debian's busybox-static), `busybox-static:arm64` unpacked in
    /// the cache on arm64.
    pub fn busybox(self) -> Result<PathBuf> {
        match self {
            Arch::X86_64 => Ok("/bin/busybox".into()),
            Arch::Aarch64 => package_file("busybox-static", self, "bin/busybox"),
        }
    }

    /// UEFI firmware: code and variable-store template (Debian's `ovmf`,
    /// `qemu-efi-aarch64`).
    pub fn firmware(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
            Arch::Aarch64 => ("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"),
        }
    }

    /// systemd-boot for this architecture (Debian's `systemd-boot-efi`; the
    /// arm64 one unpacked in the cache) and its name on the removable-media
    /// path `EFI/BOOT/`, which firmware boots without NVRAM entries.
    pub fn systemd_boot(self) -> Result<(PathBuf, &'static str)> {
        match self {
            Arch::X86_64 => Ok(("/usr/lib/systemd/boot/efi/systemd-bootx64.efi".into(), "BOOTX64.EFI")),
            Arch::Aarch64 => Ok((
                package_file("systemd-boot-efi", self, "usr/lib/systemd/boot/efi/systemd-bootaa64.efi")?,
                "BOOTAA64.EFI",
            )),
        }
    }

    /// Whether this machine can boot this architecture's scenarios: its
    /// QEMU, the boot program built, and (arm64) Debian's arm64 packages
    /// reachable by apt. Says why not.
    pub fn missing(self) -> Option<String> {
        if Command::new(self.qemu_system()).arg("--version").output().is_err() {
            return Some(format!("{} not installed (make deps installs it)", self.qemu_system()));
        }
        if let Err(e) = self.boot_binary() {
            return Some(e.0);
        }
        if self != Arch::X86_64 {
            let foreign = Command::new("dpkg").arg("--print-foreign-architectures").output();
            let listed = foreign.map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l == self.deb()));
            if !listed.unwrap_or(false) {
                return Some(format!(
                    "dpkg has no {0} architecture: `dpkg --add-architecture {0} && apt-get update` \
                     (make deps does)",
                    self.deb()
                ));
            }
        }
        None
    }
}

/// `file` (a path inside the package) of Debian package `name` for `arch`,
/// unpacked once into `<cache>/packages/ARCH/NAME/` by `apt-get download`
/// and `dpkg-deb -x`.
pub fn package_file(name: &str, arch: Arch, file: &str) -> Result<PathBuf> {
    let _guard = lock("packages")?;
    let root = cache_dir().join("packages").join(arch.deb()).join(name);
    let path = root.join(file);
    if root.join(".complete").exists() {
        return if path.exists() { Ok(path) } else { err(format!("{name}:{} has no {file}", arch.deb())) };
    }
    let package = format!("{name}:{}", arch.deb());
    unpack_package(&package, &root, &root.with_extension("tmp"), |_| Ok(()))?;
    if path.exists() { Ok(path) } else { err(format!("{package} has no {file}")) }
}

/// Debian package `package` (`NAME:ARCH`) downloaded by `apt-get download`
/// into `tmp` and unpacked by `dpkg-deb -x`; `finish` completes the tree
/// (depmod for a kernel); then it becomes `root`, marked `.complete`.
pub(crate) fn unpack_package(
    package: &str,
    root: &Path,
    tmp: &Path,
    finish: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    unpack_package_from(&[], package, root, tmp, finish)
}

/// [`unpack_package`] with `apt` options (another suite's lists: see
/// `kernel::trixie_kernel_for`).
pub(crate) fn unpack_package_from(
    apt: &[String],
    package: &str,
    root: &Path,
    tmp: &Path,
    finish: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(tmp);
    io(std::fs::create_dir_all(tmp), "create", tmp)?;
    run(Command::new("apt-get").args(apt).args(["download", "-q", package]).current_dir(tmp))?;
    let deb = std::fs::read_dir(tmp)
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "deb")))
        .ok_or_else(|| {
            crate::Error(format!("apt-get download {package} left no .deb in {}", tmp.display()))
        })?;
    let unpacked = tmp.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    io(std::fs::remove_file(&deb), "remove", &deb)?;
    finish(&unpacked)?;
    io(std::fs::write(unpacked.join(".complete"), ""), "write", &unpacked)?;
    let _ = std::fs::remove_dir_all(root);
    io(std::fs::rename(&unpacked, root), "rename to", root)?;
    let _ = std::fs::remove_dir_all(tmp);
    Ok(())
}

/// `$var`, else `<target dir>/<dir>/<name>`, where `make static` (or
/// `make static-arm64`) puts it
/// (the target dir is `$CARGO_TARGET_DIR` or `<repo>/target`). Warns when a source file is newer than the binary
/// (qemu-tests/run rebuilds it).
pub(crate) fn static_binary(var: &str, dir: &str, name: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return err(format!("{var}={} is not a file", p.display()));
        }
        return Ok(p);
    }
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let bin = target_dir.join(dir).join(name);
    if !bin.is_file() {
        return err(format!(
            "the static binary {} does not exist: run `make {}` in {} (qemu-tests/run does), \
             or set {var} to a static build",
            bin.display(),
            dir,
            repo_root().display()
        ));
    }
    for dir in ["src", "core/src", "sys/src", "boot/src"] {
        if let Some(newer) = newer_source(&repo_root().join(dir), modified(&bin)) {
            eprintln!(
                "warning: {} is newer than {}: run `make static` (qemu-tests/run does) to test the current code",
                newer.display(),
                bin.display()
            );
            break;
        }
    }
    Ok(bin)
}

fn modified(p: &Path) -> SystemTime {
    std::fs::metadata(p).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A file under `dir` modified after `than`, if any.
fn newer_source(dir: &Path, than: SystemTime) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(n) = newer_source(&p, than) {
                return Some(n);
            }
        } else if modified(&p) > than {
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_architecture_has_its_own_console_machine_and_names() {
        assert_eq!(Arch::default(), Arch::X86_64);
        assert!(Arch::X86_64.console_args().starts_with("console=ttyS0 "));
        assert!(Arch::Aarch64.console_args().starts_with("console=ttyAMA0 "));
        assert_eq!(Arch::Aarch64.machine_args(false), Arch::Aarch64.machine_args(true));
        assert!(Arch::Aarch64.machine_args(false).contains(&"virt"));
        assert_eq!((Arch::X86_64.deb(), Arch::Aarch64.deb()), ("amd64", "arm64"));
        assert_eq!((Arch::X86_64.uname_m(), Arch::Aarch64.uname_m()), ("x86_64", "aarch64"));
        assert_ne!(Arch::X86_64.firmware(), Arch::Aarch64.firmware());
    }
}
