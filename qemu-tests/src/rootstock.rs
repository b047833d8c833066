//! rootstock's own tiny initramfs: the static binary as `/init` plus a
//! module set, made by `rootstock mkinitramfs` for the cached kernel; and
//! the timings of a boot through it.

use crate::arch::Arch;
use crate::kernel::Kernel;
use crate::qemu::Console;
use crate::report::kernel_timestamp;
use crate::util::{Result, cache_dir, fnv1a, io, lock, repo_root, run};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The static boot program (`rootstock-boot`, what goes into an initramfs):
/// `$ROOTSTOCK_BOOT_BIN`, else what `make static` wrote.
pub fn boot_binary() -> Result<PathBuf> {
    Arch::X86_64.boot_binary()
}

/// The static host tool (`rootstock`: mkinitramfs, and bless and status
/// inside the test OS): `$ROOTSTOCK_HOST_BIN`, else what `make static`
/// wrote.
pub fn host_binary() -> Result<PathBuf> {
    Arch::X86_64.host_binary()
}

/// rootstock's initramfs for `kernel` with module set `set` (a name from
/// `<repo>/initramfs/`, e.g. `qemu`, or a path to a list), made by
/// [`host_binary`]'s `mkinitramfs` with [`boot_binary`] as `/init`. Cached
/// in `<cache>/initramfs/` under a key over both binaries' and the list's
/// contents and the kernel
/// version; older images of the same kernel and set are removed.
pub fn rootstock_initramfs(kernel: &Kernel, set: &str) -> Result<PathBuf> {
    rootstock_initramfs_with_extras(kernel, set, &[])
}

/// [`rootstock_initramfs`] with extra files (`mkinitramfs --extra
/// HOST:PATH`, e.g. `/bin/busybox:bin/sh`), cached apart from the image
/// without them.
pub fn rootstock_initramfs_with_extras(kernel: &Kernel, set: &str, extras: &[&str]) -> Result<PathBuf> {
    rootstock_initramfs_with(kernel, set, extras, None)
}

/// [`rootstock_initramfs`] compressed with `compress` (`mkinitramfs
/// --compress`: zstd, xz, gzip, none) instead of the kernel config's
/// default, cached apart.
pub fn rootstock_initramfs_compressed(kernel: &Kernel, set: &str, compress: &str) -> Result<PathBuf> {
    rootstock_initramfs_with(kernel, set, &[], Some(compress))
}

fn rootstock_initramfs_with(
    kernel: &Kernel,
    set: &str,
    extras: &[&str],
    compress: Option<&str>,
) -> Result<PathBuf> {
    // The host tool runs here whatever the kernel's architecture; /init is
    // the boot program built for the kernel's.
    let (bin, host) = (kernel.arch.boot_binary()?, host_binary()?);
    let list_dir = repo_root().join("initramfs");
    let list = if set.contains('/') { PathBuf::from(set) } else { list_dir.join(format!("{set}.list")) };
    let mut key_input = io(std::fs::read(&bin), "read", &bin)?;
    key_input.extend_from_slice(&io(std::fs::read(&host), "read", &host)?);
    key_input.extend_from_slice(&io(std::fs::read(&list), "read the module set", &list)?);
    key_input.extend_from_slice(format!("\n{}\n{set}", kernel.version).as_bytes());
    for extra in extras {
        let host = Path::new(extra.split(':').next().unwrap_or(extra));
        key_input.extend_from_slice(&io(std::fs::read(host), "read the extra file", host)?);
        key_input.extend_from_slice(extra.as_bytes());
    }
    let mut with = match extras {
        [] => String::new(),
        _ => format!("+extras{:08x}", fnv1a(extras.join(" ").as_bytes()) as u32),
    };
    if let Some(c) = compress {
        with.push_str(&format!("+{c}"));
    }
    let key = fnv1a(&key_input);
    let set_name = list.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let dir = cache_dir().join("initramfs");
    let prefix = format!("rootstock-{}-{set_name}{with}-", kernel.version);
    let image = dir.join(format!("{prefix}{key:016x}.img"));
    let _guard = lock("rootstock-initramfs")?;
    if image.exists() {
        return Ok(image);
    }
    io(std::fs::create_dir_all(&dir), "create", &dir)?;
    for old in std::fs::read_dir(&dir)?.flatten() {
        let name = old.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".img") {
            let _ = std::fs::remove_file(old.path());
        }
    }
    let tmp = image.with_extension("tmp");
    let out = run(Command::new(&host)
        .arg("mkinitramfs")
        .arg("--modules-dir")
        .arg(kernel.root.join("lib/modules"))
        .args(["--kver", &kernel.version, "--modules", set, "--list-dir"])
        .arg(&list_dir)
        .arg("--binary")
        .arg(&bin)
        .args(extras.iter().flat_map(|e| ["--extra", e]))
        .args(compress.iter().flat_map(|c| ["--compress", c]))
        .arg(&tmp))?;
    eprintln!("{}", out.trim_end());
    io(std::fs::rename(&tmp, &image), "rename to", &image)?;
    Ok(image)
}

/// The phases of a boot through rootstock's initramfs, on the kernel's clock
/// (seconds since the kernel started).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RootstockTimings {
    /// The kernel's "Run /init as init process".
    pub run_init: Option<f64>,
    /// rootstock's "switching root to ... after N ms" line.
    pub switch_root: Option<f64>,
    /// The N of that line: rootstock's own count from its start.
    pub switch_after_ms: Option<u64>,
    /// The test OS report's `uptime`.
    pub report: Option<f64>,
}

impl RootstockTimings {
    pub fn from_console(console: &Console) -> RootstockTimings {
        let run_init = console
            .lines
            .iter()
            .find(|l| l.text.contains("Run ") && l.text.contains(" as init process"))
            .and_then(|l| kernel_timestamp(&l.text));
        let switch = console.lines.iter().find(|l| l.text.contains("rootstock: switching root"));
        let switch_after_ms = switch.and_then(|l| {
            let rest = &l.text[l.text.rfind(" after ")? + " after ".len()..];
            rest.strip_suffix(" ms")?.trim().parse().ok()
        });
        RootstockTimings {
            run_init,
            switch_root: switch.and_then(|l| kernel_timestamp(&l.text)),
            switch_after_ms,
            report: console.report().and_then(|r| r.get("uptime")?.parse().ok()),
        }
    }

    /// Run /init → switching root: rootstock's whole initramfs phase.
    pub fn initramfs_phase(&self) -> Option<f64> {
        Some(self.switch_root? - self.run_init?)
    }

    /// Run /init → the report (initramfs phase plus the test OS's init).
    pub fn run_init_to_report(&self) -> Option<f64> {
        Some(self.report? - self.run_init?)
    }
}

impl fmt::Display for RootstockTimings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.3} s"));
        let d = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!(" (+{:.3} s)", b - a),
            _ => String::new(),
        };
        write!(
            f,
            "kernel clock: Run /init {} → switching root {}{} → report {}{}",
            s(self.run_init),
            s(self.switch_root),
            d(self.run_init, self.switch_root),
            s(self.report),
            d(self.switch_root, self.report),
        )?;
        if let Some(ms) = self.switch_after_ms {
            write!(f, "; rootstock counts {ms} ms to switch root")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::ConsoleLine;
    use std::time::Duration;

    #[test]
    fn reads_the_phases_from_the_console() {
        let text = "[    2.051000] Run /init as init process\n\
                    [    2.700000] rootstock: root /dev/vda mounted at /sysroot after 640 ms\n\
                    [    2.746000] rootstock: switching root to testos/ab.0 after 695 ms\n\
                    ROOTSTOCK-REPORT-BEGIN\nversion=2\nuptime=3.10\nROOTSTOCK-REPORT-END\n";
        let lines = text.lines().map(|t| ConsoleLine { at: Duration::ZERO, text: t.to_string() }).collect();
        let c =
            Console { lines, timed_out: false, status: None, elapsed: Duration::ZERO, log: PathBuf::new() };
        let t = RootstockTimings::from_console(&c);
        assert_eq!(t.run_init, Some(2.051));
        assert_eq!(t.switch_root, Some(2.746));
        assert_eq!(t.switch_after_ms, Some(695));
        assert_eq!(t.report, Some(3.10));
        assert!((t.initramfs_phase().unwrap() - 0.695).abs() < 1e-9);
        assert_eq!(
            t.to_string(),
            "kernel clock: Run /init 2.051 s → switching root 2.746 s (+0.695 s) → report 3.100 s \
             (+0.354 s); rootstock counts 695 ms to switch root"
        );
    }
}
