//! The boot history: one small file per boot attempt on the physical root
//! (`ostree/rootstock-history/`), so that what became of an update outlives
//! the boot that tried it: `/run/rootstock/state` describes only the
//! running boot.
//!
//! - A record is written when a userspace starts on a deployment that is on
//!   probation (being counted), was booted as a fallback, or was chosen by
//!   hand; then its verdict is set by `bless` (blessed), `bless --bad` or
//!   `rollback` (bad, with the failed units and what was done). A blessed
//!   default deployment's boots are not news and are not recorded.
//! - Each write is one atomic replace (a temporary file, fsync, rename,
//!   fsync of the directory, syncfs), under the marker directory's lock: a
//!   power cut leaves the old record or the new one.
//! - Bounded: at most [`KEEP`] records (the oldest go), each at most
//!   [`RECORD_CAP`] bytes, [`LIST_CAP`] names looked at; a record that
//!   cannot be read is reported, never trusted.
//! - Confined: the directory is reached from the physical root without a
//!   symlink anywhere on the way, as the marker directory is.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::counting::{CountingError, durable, real_dir_made, run};
use crate::errno::Errno;
use crate::seam::{Op, System};
use crate::state::Reason;
use crate::text::one_line;

/// The history's directory, relative to the physical root (beside the
/// marker directory: a file in that one is a marker).
pub const HISTORY_DIR: &str = "ostree/rootstock-history";
/// Records kept; writing one more removes the oldest.
pub const KEEP: usize = 32;
/// The largest record read.
pub const RECORD_CAP: u64 = 4096;
/// Directory entries looked at (a directory flooded with names is not
/// read to its end).
pub const LIST_CAP: usize = 1024;
/// Units named in one record, and the length of each name.
const UNITS_CAP: usize = 16;
const FIELD_CAP: usize = 256;

/// How the deployment's userspace was started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// Firmware, boot loader, kernel, initramfs.
    #[default]
    Boot,
    /// `systemctl soft-reboot` on the running kernel.
    SoftReboot,
    /// `kexec` into its kernel, without firmware and boot loader.
    Kexec,
}

/// What became of the attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Running, no verdict yet.
    #[default]
    Pending,
    /// `boot-complete.target` was reached and `rootstock bless` ran.
    Blessed,
    /// Marked bad by hand (`rootstock bless --bad`, `rootstock rollback`).
    Bad,
    /// A health check (a unit `boot-complete.target` requires) failed.
    BadHealthCheck,
    /// `boot-complete.target` was not reached within the watchdog's time.
    BadWatchdog,
    /// Never given a verdict, and a later boot fell back from it (shown,
    /// never written: derived by [`History::verdicts`]).
    Fallback,
    /// Never given a verdict, and it is not the running boot: it ended
    /// before its health checks did (a crash, a hang, a power cut).
    Unfinished,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Pending => "pending",
            Verdict::Blessed => "blessed",
            Verdict::Bad => "bad",
            Verdict::BadHealthCheck => "bad-health-check",
            Verdict::BadWatchdog => "bad-watchdog",
            Verdict::Fallback => "fallback",
            Verdict::Unfinished => "unfinished",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Verdict {
    type Err = ();
    fn from_str(s: &str) -> Result<Verdict, ()> {
        [
            Verdict::Pending,
            Verdict::Blessed,
            Verdict::Bad,
            Verdict::BadHealthCheck,
            Verdict::BadWatchdog,
            Verdict::Fallback,
            Verdict::Unfinished,
        ]
        .into_iter()
        .find(|v| v.name() == s)
        .ok_or(())
    }
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            How::Boot => "boot",
            How::SoftReboot => "soft-reboot",
            How::Kexec => "kexec",
        })
    }
}

impl FromStr for How {
    type Err = ();
    fn from_str(s: &str) -> Result<How, ()> {
        match s {
            "boot" => Ok(How::Boot),
            "soft-reboot" => Ok(How::SoftReboot),
            "kexec" => Ok(How::Kexec),
            _ => Err(()),
        }
    }
}

/// One boot attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Its number: the file's name; grows by one per record.
    pub seq: u64,
    /// When it was recorded, seconds since the epoch (the machine's clock).
    pub time: u64,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): the same
    /// across soft reboots, new after a kexec or a reboot.
    pub boot_id: String,
    /// Soft reboots of this kernel before this userspace started (systemd's
    /// `SoftRebootsCount`): with `boot_id`, which userspace this was.
    pub userspace: u32,
    /// `$stateroot/$csum.$serial`.
    pub deployment: String,
    /// The commit's `version`, when it has one.
    pub version: String,
    pub how: How,
    /// Why it was chosen: default, manual, fallback, soft-reboot.
    pub reason: Reason,
    /// Deployments passed over to get here: "what: why".
    pub from: Vec<String>,
    /// Its boot counting state once this attempt was counted.
    pub counting: String,
    pub verdict: Verdict,
    /// The health checks that failed, or that were still running when the
    /// watchdog fired.
    pub units: Vec<String>,
    /// What was done about a bad verdict ("soft reboot into …", "kexec
    /// into …", "reboot", or why nothing).
    pub action: String,
}

/// A record that is not one rootstock wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RecordError {
    pub line: usize,
    pub problem: &'static str,
}

fn capped(s: &str) -> String {
    let line = one_line(s);
    match line.char_indices().nth(FIELD_CAP) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

impl Record {
    /// `key=value` lines; `from=` and `unit=` repeat. Every value is one
    /// line, capped, so a record stays within [`RECORD_CAP`].
    pub fn render(&self) -> String {
        let mut s = format!(
            "time={}\nboot_id={}\nuserspace={}\ndeployment={}\nversion={}\nhow={}\nreason={}\ncounting={}\nverdict={}\n",
            self.time,
            capped(&self.boot_id),
            self.userspace,
            capped(&self.deployment),
            capped(&self.version),
            self.how,
            self.reason,
            capped(&self.counting),
            self.verdict
        );
        for f in self.from.iter().take(UNITS_CAP) {
            s.push_str(&format!("from={}\n", capped(f)));
        }
        for u in self.units.iter().take(UNITS_CAP) {
            s.push_str(&format!("unit={}\n", capped(u)));
        }
        if !self.action.is_empty() {
            s.push_str(&format!("action={}\n", capped(&self.action)));
        }
        s
    }

    /// Read what [`Record::render`] wrote (`seq` from the file name).
    /// Unknown keys are ignored (a newer rootstock may add some); a known
    /// key with a value it would not have written is an error.
    pub fn parse(seq: u64, text: &str) -> Result<Record, RecordError> {
        let mut r = Record { seq, ..Record::default() };
        let mut seen_deployment = false;
        for (n, line) in text.lines().enumerate() {
            let bad = |problem| RecordError { line: n + 1, problem };
            let Some((k, v)) = line.split_once('=') else { continue };
            match k {
                "time" => r.time = v.parse().map_err(|_| bad("time is not a number"))?,
                "boot_id" => r.boot_id = v.to_string(),
                "userspace" => r.userspace = v.parse().map_err(|_| bad("userspace is not a number"))?,
                "deployment" => {
                    r.deployment = v.to_string();
                    seen_deployment = true;
                }
                "version" => r.version = v.to_string(),
                "how" => r.how = v.parse().map_err(|_| bad("how is not boot, soft-reboot or kexec"))?,
                "reason" => r.reason = v.parse().map_err(|_| bad("not a reason"))?,
                "counting" => r.counting = v.to_string(),
                "verdict" => r.verdict = v.parse().map_err(|_| bad("not a verdict"))?,
                "from" => r.from.push(v.to_string()),
                "unit" => r.units.push(v.to_string()),
                "action" => r.action = v.to_string(),
                _ => {}
            }
        }
        if !seen_deployment {
            return Err(RecordError { line: 0, problem: "no deployment= line" });
        }
        Ok(r)
    }

    /// Is this the running userspace's record: this kernel's boot, this
    /// deployment, no verdict yet? (A userspace is found by these, not by
    /// its soft reboot count: `bless` runs without asking systemd.)
    pub fn is_running(&self, boot_id: &str, deployment: &str) -> bool {
        self.boot_id == boot_id && self.deployment == deployment && self.verdict == Verdict::Pending
    }
}

/// A record's file name: its number, ten digits (they sort as they grow).
pub fn file_name(seq: u64) -> String {
    format!("{seq:010}")
}

fn parse_file_name(name: &str) -> Option<u64> {
    (name.len() == 10 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok()).flatten()
}

/// The history as read from disk, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub records: Vec<Record>,
    /// Every record file's number, read or not (what the next number
    /// follows and what pruning counts).
    pub files: Vec<u64>,
    /// Records that could not be read or parsed, and why.
    pub problems: Vec<String>,
}

impl History {
    /// Read the history of the physical root mounted at `root`. Nothing
    /// there yet is an empty history.
    pub fn read(root: &Path) -> History {
        let dir = root.join(HISTORY_DIR);
        let mut h = History::default();
        match crate::confine::real_dir(root, Path::new(HISTORY_DIR)) {
            Ok(()) => {}
            Err(Errno::NOENT) => return h,
            Err(e) => {
                h.problems.push(format!("{}: {e} (it must be a real directory): not read", dir.display()));
                return h;
            }
        }
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                h.problems.push(format!("{}: {}: not read", dir.display(), Errno::from_io(&e)));
                return h;
            }
        };
        let mut names: Vec<std::ffi::OsString> =
            rd.flatten().take(LIST_CAP + 1).map(|e| e.file_name()).collect();
        if names.len() > LIST_CAP {
            names.truncate(LIST_CAP);
            h.problems.push(format!(
                "{}: more than {LIST_CAP} names: only the first {LIST_CAP} looked at",
                dir.display()
            ));
        }
        let mut seqs: Vec<u64> = names.iter().filter_map(|n| n.to_str().and_then(parse_file_name)).collect();
        seqs.sort_unstable();
        h.files = seqs.clone();
        // Each record is read confined to the physical root (a symlink is
        // resolved inside it, never out of it), O_NONBLOCK, regular, capped.
        let root_fd = match crate::confine::open_root(root) {
            Ok(fd) => fd,
            Err(e) => {
                h.problems.push(format!("{e}: the history is not read"));
                return h;
            }
        };
        for seq in seqs {
            let rel = Path::new(HISTORY_DIR).join(file_name(seq));
            match crate::confine::read_in_root(&root_fd, &rel, RECORD_CAP).map_err(|e| e.to_string()) {
                Ok(bytes) => match Record::parse(seq, &String::from_utf8_lossy(&bytes)) {
                    Ok(r) => h.records.push(r),
                    Err(e) => h.problems.push(format!(
                        "{}: {e}: not a record rootstock wrote",
                        dir.join(file_name(seq)).display()
                    )),
                },
                Err(e) => h.problems.push(format!("{e}: not read")),
            }
        }
        h
    }

    /// The running userspace's record ([`Record::is_running`]), if any.
    pub fn find(&self, boot_id: &str, deployment: &str) -> Option<&Record> {
        self.records.iter().rev().find(|r| r.is_running(boot_id, deployment))
    }

    /// The next record's number.
    pub fn next_seq(&self) -> u64 {
        self.files.last().map_or(1, |s| s + 1)
    }

    /// Each record's verdict as an orchestrator should read it: a pending
    /// record that is not the running userspace's ended without one; it is
    /// `fallback` when a later record fell back from its deployment,
    /// `unfinished` otherwise.
    /// `running` is the booted deployment, when there is one.
    pub fn verdicts(&self, boot_id: &str, running: Option<&str>) -> Vec<Verdict> {
        let current = running.and_then(|d| self.find(boot_id, d)).map(|r| r.seq);
        self.records
            .iter()
            .enumerate()
            .map(|(i, r)| match r.verdict {
                Verdict::Pending if Some(r.seq) == current => Verdict::Pending,
                Verdict::Pending => {
                    let fell_back = self.records[i + 1..].iter().any(|later| {
                        later.reason == Reason::Fallback
                            && later.from.iter().any(|f| f.starts_with(&format!("{}:", r.deployment)))
                    });
                    if fell_back { Verdict::Fallback } else { Verdict::Unfinished }
                }
                v => v,
            })
            .collect()
    }
}

/// Write `record` (a new one, or a new version of one: the same `seq`)
/// atomically to the history of the physical root mounted at `root`,
/// making that writable for it, then remove the oldest records beyond
/// [`KEEP`]. The caller holds the marker directory's lock.
pub fn write(sys: &mut dyn System, root: &Path, record: &Record, old: &History) -> Result<(), CountingError> {
    let mut seqs: Vec<u64> = old.files.iter().copied().filter(|s| *s != record.seq).collect();
    seqs.push(record.seq);
    seqs.sort_unstable();
    let drop = seqs.len().saturating_sub(KEEP);
    crate::counting::with_writable(sys, root, |sys| {
        let dir = real_dir_made(sys, root, HISTORY_DIR)?;
        let path = dir.join(file_name(record.seq));
        run(sys, Op::WriteFile { path, contents: record.render().into() })?;
        run(sys, Op::SyncFs { path: dir.clone() })?;
        if drop > 0 {
            for seq in &seqs[..drop] {
                run(sys, Op::Unlink { dir: dir.clone(), name: file_name(*seq) })?;
            }
            durable(sys, &dir)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::fake::Recorder;
    use crate::testutil::TempDir;

    fn record(seq: u64, deployment: &str, boot_id: &str) -> Record {
        Record {
            seq,
            time: 1_790_000_000 + seq,
            boot_id: boot_id.into(),
            deployment: deployment.into(),
            version: "2".into(),
            counting: "indeterminate (2 left, 1 done)".into(),
            ..Record::default()
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let r = Record {
            userspace: 2,
            how: How::SoftReboot,
            reason: Reason::Fallback,
            from: vec!["os/b.0: marked bad (a health check failed: x.service)".into()],
            verdict: Verdict::BadHealthCheck,
            units: vec!["x.service".into(), "y.service".into()],
            action: "soft reboot into os/a.0".into(),
            ..record(7, "os/b.0", "id")
        };
        assert_eq!(Record::parse(7, &r.render()), Ok(r));
    }

    #[test]
    fn a_field_with_a_newline_cannot_add_a_line_and_is_capped() {
        let r = Record {
            units: vec!["a\nverdict=blessed".into(), "b".repeat(10_000)],
            ..record(1, "os/b.0", "id")
        };
        let text = r.render();
        assert!(text.len() < RECORD_CAP as usize, "{}", text.len());
        let back = Record::parse(1, &text).unwrap();
        assert_eq!(back.verdict, Verdict::Pending);
        assert_eq!(back.units.len(), 2);
        assert!(back.units[1].chars().count() <= FIELD_CAP + 1);
    }

    #[test]
    fn what_rootstock_would_not_write_is_refused() {
        assert!(Record::parse(1, "deployment=x\nverdict=great\n").is_err());
        assert!(Record::parse(1, "deployment=x\nhow=teleport\n").is_err());
        assert!(Record::parse(1, "verdict=blessed\n").is_err(), "no deployment");
        assert!(Record::parse(1, "deployment=x\nfuture=1\n").is_ok(), "unknown keys are a newer rootstock's");
    }

    #[test]
    fn a_pending_attempt_that_a_later_boot_fell_back_from_reads_as_fallback() {
        let mut later = record(3, "os/a.0", "boot-3");
        later.reason = Reason::Fallback;
        later.from = vec!["os/b.0: marked bad by boot counting (bad (3 tries failed))".into()];
        let h = History {
            records: vec![record(1, "os/b.0", "boot-1"), record(2, "os/c.0", "boot-2"), later],
            ..History::default()
        };
        let running = Some("os/a.0");
        assert_eq!(h.verdicts("boot-3", running), [Verdict::Fallback, Verdict::Unfinished, Verdict::Pending]);
        assert_eq!(h.verdicts("boot-4", running)[2], Verdict::Unfinished, "another boot");
        assert_eq!(
            h.verdicts("boot-3", Some("os/c.0"))[2],
            Verdict::Unfinished,
            "soft-rebooted into another"
        );
    }

    #[test]
    fn writes_are_atomic_replacements_and_the_oldest_go_beyond_the_cap() {
        let t = TempDir::new();
        std::fs::create_dir_all(t.path().join(HISTORY_DIR)).unwrap();
        let h = History { files: (1..=KEEP as u64).collect(), ..History::default() };
        let mut r = Recorder::new();
        write(&mut r, t.path(), &record(KEEP as u64 + 1, "os/a.0", "b"), &h).unwrap();
        let ops: Vec<String> = r.operations().map(|o| format!("{o:?}")).collect();
        assert!(ops[0].starts_with("WriteFile") && ops[0].contains("0000000033"), "{ops:?}");
        assert!(ops[1].starts_with("SyncFs"), "{ops:?}");
        assert!(ops[2].starts_with("Unlink") && ops[2].contains("0000000001"), "the oldest: {ops:?}");
        assert_eq!(ops.len(), 5, "then fsync and syncfs of the directory: {ops:?}");
    }

    #[test]
    fn a_symlinked_directory_is_neither_read_nor_written() {
        let t = TempDir::new();
        std::fs::create_dir_all(t.path().join("ostree")).unwrap();
        std::fs::create_dir_all(t.path().join("elsewhere")).unwrap();
        std::fs::write(t.path().join("elsewhere/0000000001"), record(1, "x", "b").render()).unwrap();
        std::os::unix::fs::symlink("../elsewhere", t.path().join(HISTORY_DIR)).unwrap();
        let h = History::read(t.path());
        assert!(h.records.is_empty() && h.problems.len() == 1, "{h:?}");
        let mut r = Recorder::new();
        assert!(write(&mut r, t.path(), &record(2, "x", "b"), &h).is_err());
        assert_eq!(r.operations().count(), 0);
    }

    #[test]
    fn a_record_linked_out_of_the_root_is_not_read_and_a_flood_of_names_is_cut() {
        let t = TempDir::new();
        let outside = TempDir::new();
        let d = t.path().join(HISTORY_DIR);
        std::fs::create_dir_all(&d).unwrap();
        let target = outside.path().join("record");
        std::fs::write(&target, record(1, "os/b.0", "b").render()).unwrap();
        std::os::unix::fs::symlink(&target, d.join("0000000001")).unwrap();
        let h = History::read(t.path());
        assert!(h.records.is_empty(), "resolved inside the root, where it is not: {h:?}");
        assert_eq!(h.problems.len(), 1, "{:?}", h.problems);
        for i in 0..LIST_CAP + 5 {
            std::fs::write(d.join(format!("junk{i}")), "").unwrap();
        }
        let h = History::read(t.path());
        assert!(h.problems.iter().any(|p| p.contains("only the first 1024 looked at")), "{:?}", h.problems);
    }

    #[test]
    fn reads_only_record_names_and_reports_bad_records() {
        let t = TempDir::new();
        let d = t.path().join(HISTORY_DIR);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("0000000002"), record(2, "os/a.0", "b").render()).unwrap();
        std::fs::write(d.join("0000000001"), record(1, "os/b.0", "b").render()).unwrap();
        std::fs::write(d.join("0000000003"), "garbage").unwrap();
        std::fs::write(d.join("0000000004"), "x".repeat(RECORD_CAP as usize + 1)).unwrap();
        std::fs::write(d.join(".0000000005.tmp"), "").unwrap();
        std::fs::write(d.join("notes"), "").unwrap();
        let h = History::read(t.path());
        assert_eq!(h.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(h.problems.len(), 2, "{:?}", h.problems);
        assert_eq!(h.next_seq(), 5, "after every record file, read or not");
    }
}
