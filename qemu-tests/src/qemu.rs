//! Running QEMU (software emulation) with a hard timeout, the serial console
//! captured line by line with host timestamps.

use crate::arch::Arch;
use crate::report::{BEGIN, Report, Timings, kernel_timestamp, parse_report};
use crate::util::{Error, Result, err, io, lock, tail};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One QEMU run: direct kernel boot of `kernel` + `initrd` with `append`,
/// the disks as virtio drives (the first is /dev/vda); or, with `firmware`,
/// a boot through UEFI firmware from the disks, as a physical machine boots.
#[derive(Clone, Debug)]
pub struct QemuBoot {
    /// Unused (empty) with `firmware`.
    pub kernel: PathBuf,
    /// `None` boots without an initramfs.
    pub initrd: Option<PathBuf>,
    /// The whole kernel command line.
    pub append: String,
    /// Raw images, attached as virtio drives in order.
    pub disks: Vec<PathBuf>,
    pub memory_mb: u32,
    /// QEMU is killed after this long.
    pub timeout: Duration,
    /// The console is written here as it arrives (QEMU's stderr next to it,
    /// with `.stderr` appended).
    pub log: PathBuf,
    /// Extra QEMU arguments, appended last.
    pub extra_args: Vec<String>,
    /// `Some`: no `-kernel`/`-initrd`/`-append`; the machine (q35) starts
    /// this UEFI firmware, which boots whatever the disks hold.
    pub firmware: Option<Pflash>,
    /// Typed on the serial console, in order: once a console line contains
    /// the first string, the second is written to QEMU's stdin.
    pub input: Vec<(String, String)>,
    /// The machine emulated (x86_64 unless set).
    pub arch: Arch,
    /// QEMU drops what the guest writes to the disks (`snapshot=on`): the
    /// boots of a shared fixture each see it as it was made.
    pub snapshot: bool,
}

/// UEFI firmware as QEMU's two flash chips: the code (read-only) and a
/// variable store that the firmware and the bootloader write to (a copy
/// per boot, never the installed template).
#[derive(Clone, Debug, PartialEq)]
pub struct Pflash {
    pub code: PathBuf,
    pub vars: PathBuf,
}

/// The serial console prefix every x86_64 harness command line starts with
/// ([`Arch::console_args`] for the others).
pub const CONSOLE_ARGS: &str = "console=ttyS0 printk.time=1";

impl QemuBoot {
    /// Defaults: 1024 MiB, 1 vCPU, timeout `$ROOTSTOCK_QEMU_TIMEOUT` seconds or 180.
    pub fn new(kernel: &Path, initrd: Option<&Path>, append: &str, disk: &Path, log: &Path) -> QemuBoot {
        let timeout =
            std::env::var("ROOTSTOCK_QEMU_TIMEOUT").ok().and_then(|s| s.parse().ok()).unwrap_or(180);
        QemuBoot {
            kernel: kernel.into(),
            initrd: initrd.map(Into::into),
            append: append.into(),
            disks: vec![disk.into()],
            memory_mb: 1024,
            timeout: Duration::from_secs(timeout),
            log: log.into(),
            extra_args: Vec::new(),
            firmware: None,
            input: Vec::new(),
            arch: Arch::X86_64,
            snapshot: false,
        }
    }

    /// A boot through `firmware` from `disk` (no `-kernel`); otherwise the
    /// defaults of [`QemuBoot::new`].
    pub fn uefi(firmware: Pflash, disk: &Path, log: &Path) -> QemuBoot {
        QemuBoot { firmware: Some(firmware), ..QemuBoot::new(Path::new(""), None, "", disk, log) }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(self.arch.qemu_system());
        // Software emulation unless a probe showed KVM works (x86_64 on an
        // x86_64 host only). -nic none: no NIC option ROM.
        let accel = if self.arch == Arch::X86_64 { accelerator() } else { "tcg" };
        c.args(["-accel", accel, "-m", &self.memory_mb.to_string(), "-smp", "1"]).args([
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ]);
        // OVMF's 4 MiB flash layout wants q35 (no SMM: no Secure Boot
        // build); arm64's virt board takes AAVMF's 64 MiB flash as it is.
        c.args(self.arch.machine_args(self.firmware.is_some()));
        if let Some(fw) = &self.firmware {
            for (unit, file, ro) in [(0, &fw.code, ",readonly=on"), (1, &fw.vars, "")] {
                c.arg("-drive").arg(format!("if=pflash,format=raw,unit={unit}{ro},file={}", file.display()));
            }
        } else {
            c.arg("-kernel").arg(&self.kernel);
            if let Some(i) = &self.initrd {
                c.arg("-initrd").arg(i);
            }
            c.args(["-append", &self.append]);
        }
        for d in &self.disks {
            let snapshot = if self.snapshot { ",snapshot=on" } else { "" };
            c.arg("-drive").arg(format!("file={},format=raw,if=virtio{snapshot}", d.display()));
        }
        c.args(&self.extra_args);
        c
    }
}

/// `tcg`, or `kvm` when a quick probe shows KVM works: `/dev/kvm` exists and a
/// kernel boots to its (expected) panic under it within 20 s. KVM hangs on
/// some machines, so the default is software emulation. The probe runs once
/// per machine boot (cached in the cache directory under the boot id);
/// `ROOTSTOCK_QEMU_ACCEL=tcg|kvm` skips it.
pub fn accelerator() -> &'static str {
    static ACCEL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    ACCEL.get_or_init(|| {
        match std::env::var("ROOTSTOCK_QEMU_ACCEL").as_deref() {
            Ok("kvm") => return "kvm",
            Ok("tcg") => return "tcg",
            _ => {}
        }
        if !Path::new("/dev/kvm").exists() {
            return "tcg";
        }
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let cached = crate::util::cache_dir().join(format!("accel-{}", boot_id.trim()));
        if let Ok(a) = std::fs::read_to_string(&cached) {
            return if a.trim() == "kvm" { "kvm" } else { "tcg" };
        }
        let accel = if kvm_boots() { "kvm" } else { "tcg" };
        let _ = std::fs::create_dir_all(crate::util::cache_dir());
        let _ = std::fs::write(&cached, accel);
        eprintln!("qemu-tests: accelerator {accel} (probe cached in {})", cached.display());
        accel
    })
}

/// Boot the Debian kernel with no root under KVM: it must reach its panic
/// (and, with panic=-1 and -no-reboot, QEMU's exit) quickly.
fn kvm_boots() -> bool {
    let Ok(kernel) = crate::kernel::debian_kernel() else { return false };
    let Ok(mut child) = Command::new("qemu-system-x86_64")
        .args(["-accel", "kvm", "-m", "256", "-nographic", "-no-reboot", "-nic", "none", "-kernel"])
        .arg(kernel.vmlinuz())
        .args(["-append", "console=ttyS0 panic=-1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return false;
    };
    // Read the console while waiting, so a full pipe never stalls QEMU.
    let reader = child.stdout.take().map(|mut o| {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut out = String::new();
            let _ = o.read_to_string(&mut out);
            out
        })
    });
    let start = std::time::Instant::now();
    let mut exited = false;
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = child.try_wait() {
            exited = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = reader.and_then(|r| r.join().ok()).unwrap_or_default();
    exited && out.contains("Kernel panic")
}

/// A console line, ANSI escapes and `\r` removed, with the host time since
/// QEMU's start at which it was read.
#[derive(Clone, Debug)]
pub struct ConsoleLine {
    pub at: Duration,
    pub text: String,
}

/// Everything one run printed, and how it ended.
#[derive(Debug)]
pub struct Console {
    pub lines: Vec<ConsoleLine>,
    /// QEMU was killed at the timeout.
    pub timed_out: bool,
    /// QEMU's exit status (after a kill too).
    pub status: Option<ExitStatus>,
    /// Host time from QEMU's start to its exit.
    pub elapsed: Duration,
    pub log: PathBuf,
}

impl Console {
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|l| l.text.as_str())
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> String {
        self.lines[self.lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first line containing `needle`.
    pub fn find(&self, needle: &str) -> Option<&ConsoleLine> {
        self.lines.iter().find(|l| l.text.contains(needle))
    }

    pub fn report(&self) -> Option<Report> {
        parse_report(self.texts())
    }

    /// Every complete report, in order.
    pub fn reports(&self) -> Vec<Report> {
        crate::report::parse_reports(self.texts())
    }

    pub fn timings(&self) -> Timings {
        let run_init =
            self.lines.iter().find(|l| l.text.contains("Run ") && l.text.contains(" as init process"));
        let kernel_run_init = run_init.and_then(|l| kernel_timestamp(&l.text));
        let report_uptime = self.report().and_then(|r| r.get("uptime").and_then(|u| u.parse().ok()));
        let qemu_to_run_init = run_init.map(|l| l.at.as_secs_f64());
        Timings {
            qemu_to_kernel: qemu_to_run_init.zip(kernel_run_init).map(|(h, k)| h - k),
            qemu_to_run_init,
            kernel_run_init,
            report_uptime,
            run_init_to_report: report_uptime.zip(kernel_run_init).map(|(r, i)| r - i),
            qemu_to_report: self.find(BEGIN).map(|l| l.at.as_secs_f64()),
            qemu_total: self.elapsed.as_secs_f64(),
        }
    }
}

/// Run QEMU until it exits or the timeout passes (then kill it). QEMU runs
/// are serialized across processes (2 shared cores). An error only when QEMU
/// cannot run at all; a hang is `timed_out`.
pub fn run_qemu(boot: &QemuBoot) -> Result<Console> {
    let _guard = lock("qemu")?;
    let log_file = io(std::fs::File::create(&boot.log), "create", &boot.log)?;
    let stderr_path = PathBuf::from(format!("{}.stderr", boot.log.display()));
    let stderr = io(std::fs::File::create(&stderr_path), "create", &stderr_path)?;
    let mut cmd = boot.command();
    let stdin = if boot.input.is_empty() { Stdio::null() } else { Stdio::piped() };
    cmd.stdin(stdin).stdout(Stdio::piped()).stderr(stderr);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| Error(format!("cannot start qemu-system-x86_64: {e}")))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stdin = child.stdin.take();
    let mut input = boot.input.iter().peekable();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || read_console(stdout, log_file, start, &lines))
    };
    let deadline = start + boot.timeout;
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait()? {
            break (s, false);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break (child.wait()?, true);
        }
        if let (Some((needle, text)), Some(w)) = (input.peek(), stdin.as_mut())
            && lines.lock().unwrap().iter().any(|l| l.text.contains(needle.as_str()))
        {
            // A guest that stopped reading shows up as a missing answer.
            let _ = w.write_all(text.as_bytes()).and_then(|()| w.flush());
            input.next();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    let console = Console { lines, timed_out, status: Some(status), elapsed, log: boot.log.clone() };
    if console.lines.is_empty() && !status.success() && !timed_out {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return err(format!(
            "{:?} failed ({status}) with no console output:\n{}",
            boot.command(),
            tail(&text, 20)
        ));
    }
    Ok(console)
}

/// Copy QEMU's console to `log` and to `lines` (each with its host time
/// since `start`) until QEMU closes it.
pub fn read_console(
    stdout: impl std::io::Read,
    mut log: std::fs::File,
    start: Instant,
    lines: &Mutex<Vec<ConsoleLine>>,
) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    while let Ok(n) = r.read_until(b'\n', &mut buf) {
        if n == 0 {
            break;
        }
        let _ = log.write_all(&buf);
        let text = strip_escapes(&String::from_utf8_lossy(&buf));
        lines.lock().unwrap().push(ConsoleLine { at: start.elapsed(), text });
        buf.clear();
    }
}

/// Remove ANSI escape sequences (firmware and systemd colours) and `\r\n`.
pub fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    // parameters and intermediates, then one final byte
                    while let Some(&p) = chars.peek() {
                        chars.next();
                        if ('\x40'..='\x7e').contains(&p) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' | '\n' => {}
            c => out.push(c),
        }
    }
    out
}

/// A boot that printed a report.
#[derive(Debug)]
pub struct Booted {
    pub console: Console,
    pub report: Report,
    pub timings: Timings,
}

/// Run QEMU and demand a report: a timeout, or an exit without one, is an
/// error carrying the last 40 console lines and the log's path.
pub fn boot(boot: &QemuBoot) -> Result<Booted> {
    let console = run_qemu(boot)?;
    let why = if console.timed_out {
        format!("QEMU killed after {} s (timeout)", boot.timeout.as_secs())
    } else {
        match console.report() {
            Some(report) => {
                let timings = console.timings();
                return Ok(Booted { console, report, timings });
            }
            None => format!("QEMU exited ({:?}) without a complete report", console.status),
        }
    };
    let how = match &boot.firmware {
        Some(fw) => format!("UEFI firmware {}, booting from the disk", fw.code.display()),
        None => format!("append: {}", boot.append),
    };
    err(format!(
        "{why}; console log {}; last 40 lines:\n{}\n({how})",
        console.log.display(),
        console.tail(40)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour_and_firmware_escapes() {
        assert_eq!(strip_escapes("[\x1b[0;32m  OK  \x1b[0m] Reached\r\n"), "[  OK  ] Reached");
        assert_eq!(strip_escapes("\x1bc\x1b[?7l\x1b[2J[    0.000000] Linux"), "[    0.000000] Linux");
    }

    #[test]
    fn a_snapshot_boot_attaches_every_disk_with_snapshot_on() {
        let drives = |q: &QemuBoot| -> Vec<String> {
            let args: Vec<String> =
                q.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
            args.iter().filter(|a| a.contains("if=virtio")).cloned().collect()
        };
        let mut q = QemuBoot::new(Path::new("/k"), None, "", Path::new("/a.raw"), Path::new("/l"));
        // (arm64: TCG without probing KVM.)
        q.arch = Arch::Aarch64;
        q.disks.push("/b.raw".into());
        assert_eq!(drives(&q), ["file=/a.raw,format=raw,if=virtio", "file=/b.raw,format=raw,if=virtio"]);
        q.snapshot = true;
        assert_eq!(
            drives(&q),
            ["file=/a.raw,format=raw,if=virtio,snapshot=on", "file=/b.raw,format=raw,if=virtio,snapshot=on"]
        );
    }
}
