//! Pieces of the boot benchmark (`tests/bench.rs`, `make bench`): a
//! hand-written busybox initramfs to measure rootstock against, what one
//! boot measured, min/median/max over boots, and the Markdown table.

use crate::kernel::Kernel;
use crate::qemu::Console;
use crate::report::kernel_timestamp;
use crate::rootstock::host_binary;
use crate::util::{Result, cache_dir, err, fnv1a, io, lock, run};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The line the test OS's init writes to /dev/kmsg first thing: its
/// printk timestamp is when the deployment's init started.
pub const INIT_STARTED: &str = "testos: init started";

/// The modules of the hand-written initramfs, in load order: exactly what
/// a virtio disk with ext4 needs on Debian's 6.1 kernel (modprobe's
/// dependency order; crc32c_generic for ext4's crc32c softdep).
pub const HANDWRITTEN_MODULES: [&str; 11] = [
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "jbd2",
    "mbcache",
    "crc16",
    "ext4",
];

/// `/init` of the hand-written initramfs: what someone writes for one
/// machine, knowing its disk (/dev/vda), filesystem and stateroot layout.
/// Mount the API filesystems, insmod the modules, wait for /dev/vda, mount
/// it, bind the deployment named by `ostree=` as the new root with a
/// read-only /usr, the stateroot's /var and the physical root at /sysroot,
/// move /dev /proc /sys /run along, and switch_root. No fallback, no
/// checks, no boot counting: the floor for what laying out a deployment
/// costs.
pub fn handwritten_init() -> String {
    let modules = HANDWRITTEN_MODULES.join(" ");
    format!(
        r#"#!/bin/busybox sh
b=/bin/busybox
$b mount -t devtmpfs devtmpfs /dev
$b mount -t proc proc /proc
$b mount -t sysfs sysfs /sys
$b mount -t tmpfs -o mode=0755 tmpfs /run
for m in {modules}; do
    $b insmod /lib/modules/$m.ko || echo "handwritten: insmod $m failed"
done
read -r cmdline </proc/cmdline
for w in $cmdline; do
    case $w in ostree=*) ostree=${{w#ostree=}} ;; esac
done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 1000 ]; do $b usleep 5000; n=$((n + 1)); done
$b mount -t ext4 /dev/vda /sysroot || exec $b sh
dep=$($b readlink -f "/sysroot$ostree")
stateroot=${{dep#/sysroot/ostree/deploy/}}
stateroot=${{stateroot%%/*}}
$b mkdir /newroot
$b mount --bind "$dep" /newroot
$b mount --bind /newroot/usr /newroot/usr
$b mount -o remount,bind,ro /newroot/usr
$b mount --bind "/sysroot/ostree/deploy/$stateroot/var" /newroot/var
$b mount --move /sysroot /newroot/sysroot
: >/run/ostree-booted
for d in dev proc sys run; do $b mount --move /$d /newroot/$d; done
exec $b switch_root /newroot /sbin/init
"#
    )
}

/// The module file `name.ko` under `moddir`, by walking it.
fn find_module(moddir: &Path, name: &str) -> Option<PathBuf> {
    let want = format!("{name}.ko");
    let mut stack = vec![moddir.join("kernel")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_str() == Some(want.as_str()) {
                return Some(p);
            }
        }
    }
    None
}

/// The hand-written busybox initramfs for `kernel`: Debian's static
/// busybox, the [`HANDWRITTEN_MODULES`] at `/lib/modules/NAME.ko` and
/// [`handwritten_init`] as `/init`, packed by `rootstock mkinitramfs` (its
/// cpio writer and `compress`, the same as rootstock's images: `None` is
/// the kernel config's default) with no module set. Cached in
/// `<cache>/initramfs/` by a key over its inputs.
pub fn handwritten_initramfs(kernel: &Kernel, compress: Option<&str>) -> Result<PathBuf> {
    let host = host_binary()?;
    let busybox = PathBuf::from("/bin/busybox");
    let work = cache_dir().join("initramfs");
    io(std::fs::create_dir_all(&work), "create", &work)?;
    let script = handwritten_init();
    let mut modules = Vec::new();
    for name in HANDWRITTEN_MODULES {
        match find_module(&kernel.moddir(), name) {
            Some(p) => modules.push((name, p)),
            None => return err(format!("no {name}.ko under {}", kernel.moddir().display())),
        }
    }
    let mut key_input = script.clone().into_bytes();
    key_input.extend_from_slice(&io(std::fs::read(&host), "read", &host)?);
    key_input.extend_from_slice(&io(std::fs::read(&busybox), "read", &busybox)?);
    key_input.extend_from_slice(format!("{} {compress:?}", kernel.version).as_bytes());
    let key = fnv1a(&key_input);
    let c = compress.unwrap_or("default");
    let image = work.join(format!("handwritten-{}-{c}-{key:016x}.img", kernel.version));
    let _guard = lock("rootstock-initramfs")?;
    if image.exists() {
        return Ok(image);
    }
    let init = work.join(format!("handwritten-init-{key:016x}"));
    io(std::fs::write(&init, &script), "write", &init)?;
    let tmp = image.with_extension("tmp");
    let mut cmd = Command::new(&host);
    cmd.arg("mkinitramfs")
        .arg("--modules-dir")
        .arg(kernel.root.join("lib/modules"))
        .args(["--kver", &kernel.version, "--modules", "none", "--binary"])
        .arg(&init)
        .arg("--extra")
        .arg(format!("{}:bin/busybox", busybox.display()));
    for (name, path) in &modules {
        cmd.arg("--extra").arg(format!("{}:lib/modules/{name}.ko", path.display()));
    }
    if let Some(c) = compress {
        cmd.args(["--compress", c]);
    }
    let out = run(cmd.arg(&tmp));
    let _ = std::fs::remove_file(&init);
    eprintln!("hand-written initramfs: {}", out?.trim_end());
    io(std::fs::rename(&tmp, &image), "rename to", &image)?;
    Ok(image)
}

/// What one boot measured, on the kernel's clock unless said otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// "Run /init" → the deployment's init started ([`INIT_STARTED`]).
    pub phase: f64,
    /// Host clock: QEMU start → the deployment's init started.
    pub qemu_to_init: f64,
    /// The kernel's "Run /init" (unpacking the initramfs is before it).
    pub run_init: f64,
    /// "Trying to unpack rootfs image" → "Freeing initrd memory": the
    /// kernel unpacking (and decompressing) the initramfs.
    pub unpack: Option<f64>,
    /// MemTotal − MemAvailable when the deployment's init started, in KiB
    /// (the report's `mem_used_kb`).
    pub mem_used_kb: Option<u64>,
}

impl Sample {
    /// From a boot's console; `None` when a line is missing.
    pub fn from_console(console: &Console) -> Option<Sample> {
        let run_init =
            console.lines.iter().find(|l| l.text.contains("Run ") && l.text.contains(" as init process"))?;
        let started = console.lines.iter().find(|l| l.text.contains(INIT_STARTED))?;
        let ts = |needle: &str| console.find(needle).and_then(|l| kernel_timestamp(&l.text));
        let (k_run, k_started) = (kernel_timestamp(&run_init.text)?, kernel_timestamp(&started.text)?);
        let unpack = ts("Trying to unpack rootfs image").zip(ts("Freeing initrd memory")).map(|(a, b)| b - a);
        let mem_used_kb = console.report().and_then(|r| r.get("mem_used_kb")?.parse().ok());
        Some(Sample {
            phase: k_started - k_run,
            qemu_to_init: started.at.as_secs_f64(),
            run_init: k_run,
            unpack,
            mem_used_kb,
        })
    }
}

/// Minimum, median and maximum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<Stats> {
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = match n {
            0 => return None,
            _ if !n.is_multiple_of(2) => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Stats { min: v[0], median, max: v[n - 1] })
    }

    /// `median (min–max)` with `decimals`, scaled by `scale`.
    pub fn show(&self, scale: f64, decimals: usize) -> String {
        format!(
            "{:.d$} ({:.d$}–{:.d$})",
            self.median * scale,
            self.min * scale,
            self.max * scale,
            d = decimals
        )
    }
}

/// One variant's boots.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub name: String,
    pub bytes: u64,
    pub samples: Vec<Sample>,
}

impl Row {
    pub fn stats(&self, f: impl Fn(&Sample) -> Option<f64>) -> Option<Stats> {
        Stats::of(&self.samples.iter().filter_map(f).collect::<Vec<_>>())
    }
}

/// The benchmark's table: one row per variant, each cell `median (min–max)`
/// over the boots.
pub fn markdown_table(rows: &[Row]) -> String {
    let cell = |s: Option<Stats>, scale: f64, d: usize| s.map_or("?".into(), |s| s.show(scale, d));
    let mut t = String::from(
        "| initramfs | initramfs phase, s | QEMU start → init, s | initramfs bytes | memory in use at init, MiB |\n\
         |---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            r.name,
            cell(r.stats(|s| Some(s.phase)), 1.0, 2),
            cell(r.stats(|s| Some(s.qemu_to_init)), 1.0, 2),
            group_digits(r.bytes),
            cell(r.stats(|s| s.mem_used_kb.map(|k| k as f64)), 1.0 / 1024.0, 1),
        );
    }
    t
}

/// 1234567 → "1,234,567".
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// This machine, for the table's heading: CPU model, cores, memory.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find(|l| l.starts_with("model name"))?.split(':').nth(1).map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next()?.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| (kb + (1 << 19)) >> 20);
    format!("{cpu}, {cores} cores, {mem_gib} GiB")
}

/// Today's date (UTC), `YYYY-MM-DD`, from `date`.
pub fn today() -> String {
    run(Command::new("date").args(["-u", "+%Y-%m-%d"])).map(|d| d.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::ConsoleLine;
    use std::time::Duration;

    #[test]
    fn a_sample_from_the_console() {
        let lines = [
            (0.5, "[    0.900000] Trying to unpack rootfs image as initramfs..."),
            (3.0, "[    1.150000] Freeing initrd memory: 1700K"),
            (3.2, "[    2.000000] Run /init as init process"),
            (4.1, "[    2.650000] testos: init started"),
            (4.3, "ROOTSTOCK-REPORT-BEGIN"),
            (4.3, "mem_used_kb=40960"),
            (4.3, "ROOTSTOCK-REPORT-END"),
        ];
        let lines = lines
            .iter()
            .map(|(at, t)| ConsoleLine { at: Duration::from_secs_f64(*at), text: t.to_string() })
            .collect();
        let c =
            Console { lines, timed_out: false, status: None, elapsed: Duration::ZERO, log: PathBuf::new() };
        let s = Sample::from_console(&c).unwrap();
        assert!((s.phase - 0.65).abs() < 1e-9, "{s:?}");
        assert!((s.qemu_to_init - 4.1).abs() < 1e-9);
        assert!((s.unpack.unwrap() - 0.25).abs() < 1e-9);
        assert_eq!((s.run_init, s.mem_used_kb), (2.0, Some(40960)));

        let row = Row { name: "x".into(), bytes: 1_690_000, samples: vec![s.clone(), s] };
        let table = markdown_table(&[row]);
        assert!(
            table.ends_with("| x | 0.65 (0.65–0.65) | 4.10 (4.10–4.10) | 1,690,000 | 40.0 (40.0–40.0) |\n"),
            "{table}"
        );
    }

    #[test]
    fn stats() {
        assert_eq!(Stats::of(&[]), None);
        assert_eq!(Stats::of(&[3.0, 1.0, 2.0]), Some(Stats { min: 1.0, median: 2.0, max: 3.0 }));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(14_400_123), "14,400,123");
    }
}
