//! The test OS's report (`key=value` lines between markers on the console)
//! and the boot's phase timings.

use std::collections::BTreeMap;
use std::fmt;

pub const BEGIN: &str = "ROOTSTOCK-REPORT-BEGIN";
pub const END: &str = "ROOTSTOCK-REPORT-END";

/// What qemu-tests/testos/init printed: `version`, `uptime`, `usr_ro`,
/// `etc_rw`, `var_rw`, `var_mount`, `var_marker`, `etc_marker`,
/// `sysroot_is_physical`, `ostree_booted`, `mounts`, `rootstock_state`,
/// `kernel`, `cmdline`, `bless` (`testos.bless=`), `reset_counting`,
/// `mem_used_kb` (MemTotal − MemAvailable when the init started), `counting` (the booted deployment's state from `rootstock status --json`,
/// e.g. `indeterminate left=2 done=1`), `count_markers` (`ls
/// /sysroot/ostree/rootstock`), `journal` (what the initramfs's journal in
/// /run/log/journal holds: rootstock's `booting` line,
/// `SYSLOG_IDENTIFIER=ostree-prepare-root`; `none` without a journal).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub fields: BTreeMap<String, String>,
}

impl Report {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// The mounts field as (mount point, "fstype:ro|rw:root") pairs, in
    /// mount order (a mount point may appear more than once).
    pub fn mounts(&self) -> Vec<(&str, &str)> {
        self.get("mounts").unwrap_or("").split_whitespace().filter_map(|m| m.split_once('=')).collect()
    }
}

/// Assert one field of the report, showing the whole report when it differs.
#[track_caller]
pub fn assert_field(r: &Report, key: &str, want: &str) {
    assert_eq!(r.get(key), Some(want), "report field {key}; whole report:\n{r}");
}

/// The fields every boot through rootstock (its own initramfs or dracut's)
/// reports: `version`, /usr read-only, /etc and /var writable, /var bound by
/// the initramfs, /sysroot the physical root, /run/ostree-booted present.
#[track_caller]
pub fn assert_laid_out(r: &Report, version: &str) {
    assert_field(r, "version", version);
    for (key, want) in [
        ("usr_ro", "yes"),
        ("etc_rw", "yes"),
        ("var_rw", "yes"),
        ("var_mount", "initramfs"),
        ("sysroot_is_physical", "yes"),
        ("ostree_booted", "yes"),
    ] {
        assert_field(r, key, want);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.fields {
            writeln!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Every check of a boot, printed as a table; the test fails at the end if
/// any did, so one run shows them all.
#[derive(Default)]
pub struct Checks {
    rows: Vec<(String, bool, String)>,
}

impl Checks {
    pub fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.rows.push((name.to_string(), ok, detail.into()));
    }

    /// Report field `key` equals `want`.
    pub fn field(&mut self, r: &Report, key: &str, want: &str) {
        let got = r.get(key).unwrap_or("<missing>");
        self.check(&format!("{key} = {want}"), got == want, format!("got {got}"));
    }

    pub fn finish(self, label: &str, report: &Report) {
        eprintln!("[{label}] checks:");
        for (name, ok, detail) in &self.rows {
            eprintln!("  {} {name}  ({detail})", if *ok { "PASS" } else { "FAIL" });
        }
        let failed: Vec<&str> = self.rows.iter().filter(|r| !r.1).map(|r| r.0.as_str()).collect();
        assert!(failed.is_empty(), "[{label}] failed checks: {failed:?}\nwhole report:\n{report}");
    }
}

/// The last complete report in the console lines. Markers may follow other
/// output on their line; lines inside that are not `key=value` (kernel
/// messages) are skipped.
pub fn parse_report<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Report> {
    parse_reports(lines).pop()
}

/// Every complete report in the console lines, in order (one per userspace
/// when the test OS soft-reboots).
pub fn parse_reports<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Report> {
    let (mut current, mut all) = (None::<Report>, Vec::new());
    for line in lines {
        if line.contains(BEGIN) {
            current = Some(Report::default());
        } else if line.contains(END) {
            all.extend(current.take());
        } else if let Some(r) = current.as_mut()
            && let Some((k, v)) = line.split_once('=')
            && !k.is_empty()
            && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            r.fields.insert(k.to_string(), v.to_string());
        }
    }
    all
}

/// The printk timestamp (`[    2.661565] ...`) of a console line, in seconds.
pub fn kernel_timestamp(line: &str) -> Option<f64> {
    let rest = line.trim_start().strip_prefix('[')?;
    rest[..rest.find(']')?].trim().parse().ok()
}

/// Phases of one boot, in seconds. "host" times count from QEMU's start on
/// the host clock; "kernel" times are the guest's clock since the kernel started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Timings {
    /// host: QEMU start → the kernel's clock at 0 (firmware, loading and
    /// decompressing), estimated as `qemu_to_run_init - kernel_run_init`.
    pub qemu_to_kernel: Option<f64>,
    /// host: QEMU start → the kernel's "Run /init as init process" line.
    pub qemu_to_run_init: Option<f64>,
    /// kernel: the timestamp of "Run ... as init process".
    pub kernel_run_init: Option<f64>,
    /// kernel: the report's `uptime`.
    pub report_uptime: Option<f64>,
    /// kernel: Run /init → report (the initramfs phase plus the test OS's init).
    pub run_init_to_report: Option<f64>,
    /// host: QEMU start → the report's first line.
    pub qemu_to_report: Option<f64>,
    /// host: QEMU start → QEMU exited (or was killed).
    pub qemu_total: f64,
}

impl fmt::Display for Timings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2} s"));
        write!(
            f,
            "QEMU start → kernel {} → Run /init {} (kernel clock {}) | Run /init → report {} (kernel clock) | \
             QEMU start → report {} | QEMU exit {:.2} s",
            s(self.qemu_to_kernel),
            s(self.qemu_to_run_init),
            s(self.kernel_run_init),
            s(self.run_init_to_report),
            s(self.qemu_to_report),
            self.qemu_total
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_complete_report_and_skips_noise() {
        let console = "junk\n\x1b[2Jfirmware ROOTSTOCK-REPORT-BEGIN\nversion=1\nROOTSTOCK-REPORT-END\n\
                       mount: failed ROOTSTOCK-REPORT-BEGIN\nversion=2\n[    9.1] EXT4-fs (vda): x=y\n\
                       usr_ro=yes\ncmdline=a=b c\nmounts=/=ext4:rw:/x /usr=ext4:ro:/x/usr\nROOTSTOCK-REPORT-END\n\
                       ROOTSTOCK-REPORT-BEGIN\nversion=3\n";
        let r = parse_report(console.lines()).unwrap();
        assert_eq!(r.get("version"), Some("2"));
        assert_eq!(r.get("usr_ro"), Some("yes"));
        assert_eq!(r.get("cmdline"), Some("a=b c"));
        assert_eq!(r.mounts(), vec![("/", "ext4:rw:/x"), ("/usr", "ext4:ro:/x/usr")]);
        assert_eq!(r.fields.len(), 4, "{r}");
        assert_eq!(parse_report("ROOTSTOCK-REPORT-BEGIN\nversion=1\n".lines()), None);
        let all = parse_reports(console.lines());
        let versions: Vec<_> = all.iter().map(|r| r.get("version").unwrap()).collect();
        assert_eq!(versions, ["1", "2"], "every complete report, in order");
    }

    #[test]
    fn reads_printk_timestamps() {
        assert_eq!(kernel_timestamp("[    2.661565] Run /init as init process"), Some(2.661565));
        assert_eq!(kernel_timestamp("[  OK  ] Reached target"), None);
        assert_eq!(kernel_timestamp("Run /init"), None);
    }
}
