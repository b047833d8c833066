//! Boot counting, bootloader-independent, on the physical root.
//!
//! One empty marker file per deployment in `/ostree/rootstock/`, named
//! BLS-style after the deployment (`$stateroot-$csum.$serial`):
//!
//! | file | state |
//! |---|---|
//! | `NAME` | good (blessed) |
//! | `NAME+LL-DD` with LL > 0 | indeterminate: LL tries left, DD done |
//! | `NAME+00-DD` | bad |
//! | none | never counted |
//!
//! Every change is one create or one `renameat2(RENAME_NOREPLACE)`, then an
//! fsync of the directory and a `syncfs`: a power cut at any instant leaves
//! either the old name or the new one, and both boot.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::errno::Errno;
use crate::seam::{Op, Query, System};

/// The directory of markers, relative to the physical root.
pub const MARKER_DIR: &str = "ostree/rootstock";

/// A deployment's counting state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Count {
    Never,
    Good,
    Indeterminate { left: u32, done: u32 },
    Bad { done: u32 },
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Count::Never => write!(f, "never counted"),
            Count::Good => write!(f, "good"),
            Count::Indeterminate { left, done } => write!(f, "indeterminate ({left} left, {done} done)"),
            Count::Bad { done } => write!(f, "bad ({done} tries failed)"),
        }
    }
}

/// Nothing counted yet.
impl Default for Count {
    fn default() -> Count {
        Count::Never
    }
}

/// [`Count`] as the state file writes it: `never counted`, `good`,
/// `indeterminate (2 left, 1 done)`, `bad (3 tries failed)`.
impl FromStr for Count {
    type Err = ();
    fn from_str(s: &str) -> Result<Count, ()> {
        let num = |t: &str| t.trim().parse::<u32>().map_err(|_| ());
        match s {
            "never counted" => Ok(Count::Never),
            "good" => Ok(Count::Good),
            _ => {
                if let Some(rest) = s.strip_prefix("indeterminate (").and_then(|r| r.strip_suffix(" done)")) {
                    let (left, done) = rest.split_once(" left, ").ok_or(())?;
                    Ok(Count::Indeterminate { left: num(left)?, done: num(done)? })
                } else if let Some(done) =
                    s.strip_prefix("bad (").and_then(|r| r.strip_suffix(" tries failed)"))
                {
                    Ok(Count::Bad { done: num(done)? })
                } else {
                    Err(())
                }
            }
        }
    }
}

/// A marker file name split into the deployment's name and its counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub base: String,
    pub count: Count,
}

/// Parse a marker file name. The counter is exactly `+LL-DD` (two digits
/// each); anything else after a `+` makes the whole name the base.
pub fn parse_marker(name: &str) -> Marker {
    if let Some((base, counter)) = name.rsplit_once('+')
        && let Some((l, d)) = counter.split_once('-')
        && l.len() == 2
        && d.len() == 2
        && let (Ok(left), Ok(done)) = (l.parse::<u32>(), d.parse::<u32>())
        && l.bytes().chain(d.bytes()).all(|b| b.is_ascii_digit())
    {
        let count = if left == 0 { Count::Bad { done } } else { Count::Indeterminate { left, done } };
        return Marker { base: base.to_string(), count };
    }
    Marker { base: name.to_string(), count: Count::Good }
}

/// The file name for a deployment in a state (`None` for never).
pub fn marker_name(base: &str, count: Count) -> Option<String> {
    match count {
        Count::Never => None,
        Count::Good => Some(base.to_string()),
        Count::Indeterminate { left, done } => {
            Some(format!("{base}+{:02}-{:02}", left.min(99), done.min(99)))
        }
        Count::Bad { done } => Some(format!("{base}+00-{:02}", done.min(99))),
    }
}

/// One change to the marker directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create { name: String },
    Rename { from: String, to: String },
    Remove { name: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Marker names come from disk: escaped, one line whatever they hold.
        let e = crate::text::one_line;
        match self {
            Change::Create { name } => write!(f, "create {}", e(name)),
            Change::Rename { from, to } => write!(f, "rename {} -> {}", e(from), e(to)),
            Change::Remove { name } => write!(f, "remove {}", e(name)),
        }
    }
}

/// The markers read from the directory, reduced to one state per deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Markers {
    /// base name -> (its file, its state)
    pub by_base: BTreeMap<String, (String, Count)>,
    /// Changes that make the directory consistent again: duplicates and
    /// markers of deployments that no longer exist.
    pub repairs: Vec<Change>,
}

/// Reduce the directory listing to one state per deployment, with the
/// repairs that make it so on disk. When a deployment has several markers
/// (a power cut between two tools, or an old bug, as systemd#33504) the
/// decision is deterministic and conservative: good wins (someone blessed
/// it), else the one with the fewest tries left; the others are removed.
/// Markers whose base is not in `known` belong to deleted deployments.
pub fn reduce(files: &[String], known: &[String]) -> Markers {
    let mut all: BTreeMap<String, Vec<(String, Count)>> = BTreeMap::new();
    let mut repairs = Vec::new();
    // A set: markers × deployments comparisons would be quadratic (1,000
    // stale markers against 1,000 deployments are a million).
    let known: std::collections::HashSet<&str> = known.iter().map(String::as_str).collect();
    let mut sorted: Vec<&String> = files.iter().collect();
    sorted.sort();
    for f in sorted {
        if f.starts_with('.') {
            continue; // not ours (editor or tool temporaries)
        }
        let m = parse_marker(f);
        if known.contains(m.base.as_str()) {
            all.entry(m.base).or_default().push((f.clone(), m.count));
        } else {
            repairs.push(Change::Remove { name: f.clone() });
        }
    }
    // Good first; then the fewest tries left (bad has none).
    let rank = |c: &Count| match c {
        Count::Good => (0, 0),
        Count::Bad { .. } => (1, 0),
        Count::Indeterminate { left, .. } => (1, *left),
        Count::Never => (2, 0),
    };
    let mut by_base = BTreeMap::new();
    for (base, mut list) in all {
        list.sort_by_key(|(f, c)| (rank(c), f.clone()));
        let keep = list.remove(0);
        for (f, _) in list {
            repairs.push(Change::Remove { name: f });
        }
        by_base.insert(base, keep);
    }
    Markers { by_base, repairs }
}

impl Markers {
    pub fn count(&self, base: &str) -> Count {
        self.by_base.get(base).map(|(_, c)| *c).unwrap_or(Count::Never)
    }

    /// The change that records one boot attempt of `base`: arm a never-counted
    /// deployment with `tries` (and count this attempt), or take one try.
    /// `None` when nothing is counted (good, or never counted and not armed).
    pub fn attempt(&self, base: &str, tries: u32, arm: bool) -> Option<Change> {
        match self.by_base.get(base) {
            None if arm && tries > 0 => {
                let to = marker_name(base, Count::Indeterminate { left: tries - 1, done: 1 });
                // tries == 1: this is the last try; it is recorded as 00-01,
                // which reads as bad if this boot never blesses.
                let to = if tries == 1 { marker_name(base, Count::Bad { done: 1 }) } else { to };
                to.map(|name| Change::Create { name })
            }
            Some((file, Count::Indeterminate { left, done })) => {
                let next = if *left <= 1 {
                    Count::Bad { done: done + 1 }
                } else {
                    Count::Indeterminate { left: left - 1, done: done + 1 }
                };
                marker_name(base, next).map(|to| Change::Rename { from: file.clone(), to })
            }
            _ => None,
        }
    }

    /// The change that blesses `base` (good) or marks it bad.
    pub fn bless(&self, base: &str, good: bool) -> Option<Change> {
        let current = self.by_base.get(base);
        let target = if good {
            Count::Good
        } else {
            let done = match current {
                Some((_, Count::Indeterminate { done, .. } | Count::Bad { done })) => *done,
                _ => 0,
            };
            Count::Bad { done }
        };
        let to = marker_name(base, target)?;
        match current {
            Some((from, _)) if *from == to => None,
            Some((from, _)) => Some(Change::Rename { from: from.clone(), to }),
            None => Some(Change::Create { name: to }),
        }
    }
}

/// The marker base name of a deployment.
pub fn base_name(stateroot: &str, id: &str) -> String {
    format!("{stateroot}-{id}")
}

/// systemd-boot's own boot counting in a boot loader entry's file name
/// (`NAME+LEFT-DONE.conf`, `NAME+LEFT.conf`: ostree's
/// `sysroot.boot-counting-tries`, Garden Linux's UKIs): `(left, done)`.
/// The boot loader counts such an entry (it renames it before booting it);
/// rootstock counts nothing for it, and `+0-DONE` is bad.
pub fn loader_count(entry: &str) -> Option<(u32, u32)> {
    let stem = entry.strip_suffix(".conf").unwrap_or(entry);
    let (_, counter) = stem.rsplit_once('+')?;
    let (left, done) = counter.split_once('-').unwrap_or((counter, "0"));
    let number =
        |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten();
    Some((number(left)?, number(done)?))
}

/// systemd-boot's `LoaderBootCountPath` EFI variable, as efivarfs names it:
/// set when the boot loader counts the entry it booted (it renamed it to
/// take a try), holding that entry's path on the ESP.
pub const LOADER_BOOT_COUNT_PATH: &str = "LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";

/// The entry the boot loader counts this boot, from the efivarfs directory
/// `efivars` (4 attribute bytes, then UTF-16LE up to a NUL); `None` when
/// the variable is absent or not a string.
pub fn loader_counted_entry(efivars: &Path) -> Option<String> {
    let bytes = crate::confine::read_file(&efivars.join(LOADER_BOOT_COUNT_PATH), 4096).ok()?;
    let units: Vec<u16> = bytes.get(4..)?.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    String::from_utf16(&units[..end]).ok().filter(|p| !p.is_empty())
}

/// A failed change of the marker directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("boot counting: {step} {}: {errno}", crate::text::one_line(&path.display().to_string()))]
pub struct CountingError {
    pub step: &'static str,
    pub path: PathBuf,
    pub errno: Errno,
}

/// The step named when the marker directory is a symlink or not a directory.
const SYMLINK_STEP: &str = "open (it must be a real directory, not a symlink)";

/// The marker directory on a mounted physical root.
pub struct MarkerDir {
    root: PathBuf,
    path: PathBuf,
}

impl MarkerDir {
    pub fn new(physical_root: &Path) -> MarkerDir {
        MarkerDir { root: physical_root.to_path_buf(), path: physical_root.join(MARKER_DIR) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file names in the directory (none when it does not exist yet).
    /// The directory is looked up confined to the physical root: a
    /// symlink on the way (`/ostree/rootstock -> ../boot/loader.0/entries`)
    /// is an error, so nothing outside it is ever read or deleted.
    pub fn list(&self) -> Result<Vec<String>, CountingError> {
        match self.check() {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(vec![]),
            Err(errno) => return Err(CountingError { step: SYMLINK_STEP, path: self.path.clone(), errno }),
        }
        match std::fs::read_dir(&self.path) {
            Ok(rd) => Ok(rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(CountingError { step: "read", path: self.path.clone(), errno: Errno::from_io(&e) }),
        }
    }

    /// The directory, or what leads to it, is a real directory (or missing).
    fn check(&self) -> Result<(), Errno> {
        crate::confine::real_dir(&self.root, Path::new(MARKER_DIR))
    }

    /// The operation that makes `change`.
    fn op(&self, change: &Change) -> Op {
        let dir = self.path.clone();
        match change {
            // O_EXCL: never replace a marker another boot wrote.
            Change::Create { name } => Op::CreateExclusive { dir, name: name.clone() },
            Change::Rename { from, to } => Op::RenameNoReplace { dir, from: from.clone(), to: to.clone() },
            Change::Remove { name } => Op::Unlink { dir, name: name.clone() },
        }
    }

    /// Apply changes, each made durable before the next: the operation, an
    /// fsync of the directory, a syncfs of its filesystem. A directory that
    /// does not exist yet is created first, and its parent made durable.
    pub fn apply(&self, sys: &mut dyn System, changes: &[Change]) -> Result<(), CountingError> {
        if changes.is_empty() {
            return Ok(());
        }
        real_dir_made(sys, &self.root, MARKER_DIR)?;
        for (i, c) in changes.iter().enumerate() {
            run(sys, self.op(c))?;
            // A run of removals (stale or duplicate markers: repairs that
            // any later read redoes) is made durable once, after its last:
            // 100,000 stale markers are not 100,000 syncfs calls.
            let batched = matches!(c, Change::Remove { .. })
                && matches!(changes.get(i + 1), Some(Change::Remove { .. }));
            if !batched {
                durable(sys, &self.path)?;
            }
        }
        Ok(())
    }

    /// [`MarkerDir::apply`] on the physical root mounted at `mount_point`,
    /// made writable for the changes by [`with_writable`].
    pub fn apply_writable(
        &self,
        sys: &mut dyn System,
        mount_point: &Path,
        changes: &[Change],
    ) -> Result<(), CountingError> {
        if changes.is_empty() {
            return Ok(());
        }
        with_writable(sys, mount_point, |sys| self.apply(sys, changes))
    }
}

/// Run `change` with the physical root mounted at `mount_point` writable:
/// when it is mounted read-only, first the mount alone is made writable
/// (a read-only bind), then, if that is not enough, the filesystem.
/// Restored read-only afterwards, also when `change` failed. Every write
/// to the physical root (markers, the boot history) goes through here.
pub fn with_writable<T>(
    sys: &mut dyn System,
    mount_point: &Path,
    change: impl FnOnce(&mut dyn System) -> Result<T, CountingError>,
) -> Result<T, CountingError> {
    // A mount that cannot be asked is taken as writable: the change then
    // fails with EROFS if it is not, which says the same.
    let read_only = |sys: &mut dyn System| {
        sys.query(&Query::ReadOnly { path: mount_point.to_path_buf() }).unwrap_or(false)
    };
    if !read_only(sys) {
        return change(sys);
    }
    let remount = |bind, read_only| Op::Remount { target: mount_point.to_path_buf(), bind, read_only };
    let failed = |step, errno| CountingError { step, path: mount_point.to_path_buf(), errno };
    log::info!(
        "boot counting: {} is read-only: remounting it read-write for the change",
        mount_point.display()
    );
    sys.execute(&remount(true, false)).map_err(|e| failed("remount read-write", e))?;
    let whole_fs = read_only(sys);
    if whole_fs && let Err(e) = sys.execute(&remount(false, false)) {
        // Put the mount back as it was before reporting.
        restore(sys, &remount(true, true));
        return Err(failed("remount read-write", e));
    }
    let result = change(sys);
    let back = remount(!whole_fs, true);
    match result {
        Ok(v) => sys.execute(&back).map(|()| v).map_err(|e| failed("remount read-only again", e)),
        Err(e) => {
            restore(sys, &back);
            Err(e)
        }
    }
}

/// Boot counting on one physical root, as every command that counts,
/// blesses or shows it sees it: the boot, `prepare-soft-reboot`, `bless`
/// and `status`. The markers are read once and reduced against the
/// deployments on disk (`ostree/deploy/*/deploy/*`).
///
/// One behaviour for what cannot be read:
/// - the deployments cannot be listed: no marker is judged stale (each
///   counts for its own name), and counting goes on;
/// - the markers cannot be read (the directory is a symlink, unreadable):
///   nothing is counted, blessed or repaired in this run, and the error
///   says why ([`BootCounting::unreadable`]).
pub struct BootCounting {
    root: PathBuf,
    dir: MarkerDir,
    markers: Result<Markers, CountingError>,
}

/// What recording one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The change written (`None`: nothing was counted, or the write failed).
    pub change: Option<Change>,
    /// The count on disk afterwards.
    pub count: Count,
}

impl BootCounting {
    /// Read the markers of the physical root mounted at `root`.
    pub fn read(root: &Path) -> BootCounting {
        let dir = MarkerDir::new(root);
        let markers = dir.list().map(|files| match crate::layout::deployment_dirs(root) {
            Ok(known) => {
                let known: Vec<String> = known.iter().map(|(s, id)| base_name(s, id)).collect();
                reduce(&files, &known)
            }
            Err(e) => {
                // Without the list of deployments no marker can be judged stale.
                log::warn!("{e}: boot counting markers not checked for stale entries");
                let bases: Vec<String> = files.iter().map(|f| parse_marker(f).base).collect();
                reduce(&files, &bases)
            }
        });
        if let Err(e) = &markers {
            log::error!("{e}: boot counting is off for this run");
        }
        BootCounting { root: root.to_path_buf(), dir, markers }
    }

    /// Why the markers could not be read, if they could not.
    pub fn unreadable(&self) -> Option<&CountingError> {
        self.markers.as_ref().err()
    }

    /// A deployment's state (never counted when the markers are unreadable).
    pub fn count(&self, base: &str) -> Count {
        self.markers.as_ref().map(|m| m.count(base)).unwrap_or(Count::Never)
    }

    /// The change one boot attempt of `base` makes (see [`Markers::attempt`]),
    /// and the count it leaves.
    pub fn attempt(&self, base: &str, tries: u32, arm: bool) -> (Option<Change>, Count) {
        let change = self.markers.as_ref().ok().and_then(|m| m.attempt(base, tries, arm));
        let count = match &change {
            Some(Change::Create { name } | Change::Rename { to: name, .. }) => parse_marker(name).count,
            _ => self.count(base),
        };
        (change, count)
    }

    /// The change that blesses `base` (good) or marks it bad.
    pub fn bless(&self, base: &str, good: bool) -> Result<Option<Change>, CountingError> {
        self.markers.as_ref().map(|m| m.bless(base, good)).map_err(Clone::clone)
    }

    /// Remove duplicate and stale markers, best effort: a marker that stays
    /// is reduced the same way next time. Returns how many were removed.
    pub fn repair(&mut self, sys: &mut dyn System) -> usize {
        let Ok(markers) = &mut self.markers else { return 0 };
        let repairs = std::mem::take(&mut markers.repairs);
        if repairs.is_empty() {
            return 0;
        }
        // One line, whatever the count: 100,000 stale markers must not
        // mean 100,000 console lines at boot.
        log::info!("boot counting: removing {} stale or duplicate marker(s)", repairs.len());
        for r in &repairs {
            log::debug!("boot counting: repair: {r}");
        }
        match self.dir.apply_writable(sys, &self.root, &repairs) {
            Ok(()) => repairs.len(),
            Err(e) => {
                log::error!("{e}: a duplicate or stale marker stays");
                0
            }
        }
    }

    /// Write `change`, making the physical root writable for it when it is
    /// mounted read-only.
    pub fn write(&self, sys: &mut dyn System, change: &Change) -> Result<(), CountingError> {
        self.dir.apply_writable(sys, &self.root, std::slice::from_ref(change))
    }

    /// Record one attempt of `base` ([`BootCounting::attempt`]'s change):
    /// not fatal when it fails (booting uncounted beats not booting); the
    /// result then says what is on disk, not the change that failed.
    pub fn record(&self, sys: &mut dyn System, base: &str, change: Option<Change>, what: &str) -> Recorded {
        let Some(change) = change else {
            return Recorded { change: None, count: self.count(base) };
        };
        log::info!("boot counting: {change}");
        match self.write(sys, &change) {
            Ok(()) => {
                let count = match &change {
                    Change::Create { name } | Change::Rename { to: name, .. } => parse_marker(name).count,
                    Change::Remove { .. } => Count::Never,
                };
                Recorded { change: Some(change), count }
            }
            Err(e) => {
                let count = self.count(base);
                log::error!("{e}: {what} is not counted (the counter stays {count})");
                Recorded { change: None, count }
            }
        }
    }
}

/// Undo a remount after a failure, which is what gets reported.
fn restore(sys: &mut dyn System, back: &Op) {
    if let Err(e) = sys.execute(back) {
        log::warn!("boot counting: could not make {} read-only again: {e}", back.target().display());
    }
}

/// The directory `rel` below the physical root `root`, reached without a
/// symlink anywhere on the way ([`crate::confine::real_dir`]); made, and
/// its parent made durable, when it does not exist yet. Returns its path.
pub(crate) fn real_dir_made(sys: &mut dyn System, root: &Path, rel: &str) -> Result<PathBuf, CountingError> {
    let path = root.join(rel);
    match crate::confine::real_dir(root, Path::new(rel)) {
        Ok(()) => Ok(path),
        Err(Errno::NOENT) => {
            run(sys, Op::Mkdir { path: path.clone() })?;
            if let Some(parent) = path.parent() {
                durable(sys, parent)?;
            }
            Ok(path)
        }
        Err(errno) => Err(CountingError { step: SYMLINK_STEP, path, errno }),
    }
}

/// Execute a change's operation; the error names the step and the path.
pub(crate) fn run(sys: &mut dyn System, op: Op) -> Result<(), CountingError> {
    sys.execute(&op).map_err(|errno| {
        let (step, path) = match &op {
            Op::Mkdir { path } => ("create", path.clone()),
            Op::CreateExclusive { dir, name } => ("create", dir.join(name)),
            Op::RenameNoReplace { dir, from, .. } => ("rename", dir.join(from)),
            Op::Unlink { dir, name } => ("remove", dir.join(name)),
            Op::WriteFile { path, .. } => ("write", path.clone()),
            Op::FsyncDir { path } => ("fsync", path.clone()),
            Op::SyncFs { path } => ("syncfs", path.clone()),
            op => ("change", op.target().to_path_buf()),
        };
        CountingError { step, path, errno }
    })
}

/// Make the names in `dir` durable: fsync it, then syncfs its filesystem.
pub(crate) fn durable(sys: &mut dyn System, dir: &Path) -> Result<(), CountingError> {
    run(sys, Op::FsyncDir { path: dir.to_path_buf() })?;
    run(sys, Op::SyncFs { path: dir.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_systemd_boot_counts_from_its_efi_variable() {
        let t = crate::testutil::TempDir::new();
        assert_eq!(loader_counted_entry(t.path()), None, "no variable: nothing counts this boot");
        let mut bytes = vec![7, 0, 0, 0];
        for u in "\\loader\\entries\\ostree-1+2-1.conf".encode_utf16().chain([0]) {
            bytes.extend(u.to_le_bytes());
        }
        std::fs::write(t.path().join(LOADER_BOOT_COUNT_PATH), &bytes).unwrap();
        assert_eq!(loader_counted_entry(t.path()).as_deref(), Some("\\loader\\entries\\ostree-1+2-1.conf"));
        std::fs::write(t.path().join(LOADER_BOOT_COUNT_PATH), [7, 0, 0, 0, 0x00, 0xd8]).unwrap();
        assert_eq!(loader_counted_entry(t.path()), None, "not UTF-16");
    }

    #[test]
    fn systemd_boots_counter_in_an_entry_name() {
        assert_eq!(loader_count("ostree-1-os+3.conf"), Some((3, 0)));
        assert_eq!(loader_count("ostree-1-os+2-1.conf"), Some((2, 1)));
        assert_eq!(loader_count("ostree-1-os+0-3.conf"), Some((0, 3)));
        assert_eq!(loader_count("ostree-1-os.conf"), None, "not counted, or blessed");
        assert_eq!(loader_count("a+b.conf"), None);
        assert_eq!(loader_count("a+1-.conf"), None);
        assert_eq!(loader_count("a+99999999999.conf"), None, "no overflow");
    }

    const A: &str = "os-aaaa.0";
    const B: &str = "os-bbbb.0";

    fn known() -> Vec<String> {
        vec![A.to_string(), B.to_string()]
    }

    #[test]
    fn a_marker_name_with_a_newline_is_one_escaped_log_line() {
        let m = reduce(&["os-x.0\nboot counting: forged".to_string()], &known());
        assert_eq!(m.repairs.len(), 1, "not a known deployment: removed");
        assert_eq!(m.repairs[0].to_string(), "remove os-x.0\\x0aboot counting: forged");
        let e = CountingError { step: "remove", path: "/m/a\nb".into(), errno: Errno::PERM };
        assert!(e.to_string().starts_with("boot counting: remove /m/a\\x0ab: EPERM"), "{e}");
    }

    #[test]
    fn marker_names_round_trip() {
        let cases = [
            ("os-aaaa.0", "os-aaaa.0", Count::Good),
            ("os-aaaa.0+02-01", "os-aaaa.0", Count::Indeterminate { left: 2, done: 1 }),
            ("os-aaaa.0+00-03", "os-aaaa.0", Count::Bad { done: 3 }),
            ("my+os-aaaa.0+01-00", "my+os-aaaa.0", Count::Indeterminate { left: 1, done: 0 }),
            ("os-aaaa.0+2-1", "os-aaaa.0+2-1", Count::Good),
            ("os-aaaa.0+ab-01", "os-aaaa.0+ab-01", Count::Good),
            ("os-aaaa.0+-1-01", "os-aaaa.0+-1-01", Count::Good),
        ];
        for (name, base, count) in cases {
            assert_eq!(parse_marker(name), Marker { base: base.into(), count }, "{name}");
        }
        for c in [Count::Good, Count::Indeterminate { left: 3, done: 0 }, Count::Bad { done: 12 }] {
            let n = marker_name(A, c).unwrap();
            assert_eq!(parse_marker(&n).count, c, "{n}");
        }
        assert_eq!(marker_name(A, Count::Never), None);
    }

    #[test]
    fn duplicates_and_stale_markers_are_repaired_deterministically() {
        let files: Vec<String> =
            ["os-aaaa.0+02-01", "os-aaaa.0", "os-bbbb.0+02-01", "os-bbbb.0+01-02", "os-gone.0+00-03", ".tmp"]
                .iter()
                .map(|s| s.to_string())
                .collect();
        let m = reduce(&files, &known());
        assert_eq!(m.count(A), Count::Good, "a blessed marker wins");
        assert_eq!(m.count(B), Count::Indeterminate { left: 1, done: 2 }, "fewest tries left wins");
        let mut repairs: Vec<String> = m.repairs.iter().map(|c| c.to_string()).collect();
        repairs.sort();
        assert_eq!(
            repairs,
            vec!["remove os-aaaa.0+02-01", "remove os-bbbb.0+02-01", "remove os-gone.0+00-03"]
        );
        // The same listing in another order gives the same result.
        let mut rev = files.clone();
        rev.reverse();
        assert_eq!(reduce(&rev, &known()), m);
    }

    #[test]
    fn attempts_count_down_to_bad() {
        let mut files: Vec<String> = vec![];
        let mut seen = vec![];
        for _ in 0..4 {
            let m = reduce(&files, &known());
            let c = m.attempt(A, 3, true);
            seen.push(m.count(A));
            match c {
                Some(Change::Create { name }) => files.push(name),
                Some(Change::Rename { from, to }) => {
                    files.retain(|f| *f != from);
                    files.push(to);
                }
                Some(Change::Remove { .. }) => unreachable!("attempts never remove"),
                None => {}
            }
        }
        assert_eq!(
            seen,
            vec![
                Count::Never,
                Count::Indeterminate { left: 2, done: 1 },
                Count::Indeterminate { left: 1, done: 2 },
                Count::Bad { done: 3 },
            ]
        );
        assert_eq!(files, vec!["os-aaaa.0+00-03".to_string()], "bad stays bad: no change");
    }

    #[test]
    fn what_is_not_counted() {
        let m = reduce(&["os-aaaa.0".into()], &known());
        assert_eq!(m.attempt(A, 3, true), None, "good is never counted again");
        assert_eq!(m.attempt(B, 3, false), None, "never counted and not armed");
        assert_eq!(m.attempt(B, 0, true), None, "counting off");
        assert_eq!(m.attempt(B, 1, true), Some(Change::Create { name: "os-bbbb.0+00-01".into() }));
    }

    #[test]
    fn bless_good_and_bad() {
        let m = reduce(&["os-aaaa.0+01-02".into()], &known());
        assert_eq!(m.bless(A, true), Some(Change::Rename { from: "os-aaaa.0+01-02".into(), to: A.into() }));
        assert_eq!(
            m.bless(A, false),
            Some(Change::Rename { from: "os-aaaa.0+01-02".into(), to: "os-aaaa.0+00-02".into() })
        );
        assert_eq!(m.bless(B, true), Some(Change::Create { name: B.into() }));
        let good = reduce(&[A.into()], &known());
        assert_eq!(good.bless(A, true), None, "already good");
    }

    // Recorded sequences: what each change does to the system, in order.

    use crate::seam::fake::{Call, Recorder};
    use crate::testutil::TempDir;

    /// A physical root with its marker directory.
    fn root() -> TempDir {
        let t = TempDir::new();
        std::fs::create_dir_all(t.path().join(MARKER_DIR)).unwrap();
        t
    }

    /// Apply `changes` to the markers under `root`, mounted there, against `r`.
    fn apply(r: &mut Recorder, root: &Path, changes: &[Change]) -> Result<(), CountingError> {
        MarkerDir::new(root).apply_writable(r, root, changes)
    }

    /// The lines a recorder shows for one change on a writable root `p`
    /// (the marker directory `p/ostree/rootstock` exists).
    fn change_lines(p: &str, op: &str, flags: &str) -> Vec<String> {
        let d = format!("{p}/ostree/rootstock");
        vec![
            format!("{op} [{flags}]"),
            format!("fsync  - -> {d} [directory]"),
            format!("syncfs - -> {d} [filesystem]"),
        ]
    }

    fn with_query(p: &str, mut lines: Vec<String>) -> Vec<String> {
        lines.insert(0, format!("query  read-only? {p}"));
        lines
    }

    #[test]
    fn arm_decrement_go_bad_bless_as_recorded() {
        let t = root();
        let p = t.path().display().to_string();
        let d = format!("{p}/ostree/rootstock");
        let cases: Vec<(&str, Vec<String>, Option<Change>, String)> = vec![
            ("arm", vec![], Markers::default().attempt(A, 3, true), format!("create - -> {d}/{A}+02-01")),
            ("decrement", vec![format!("{A}+02-01")], None, format!("rename {d}/{A}+02-01 -> {d}/{A}+01-02")),
            ("go bad", vec![format!("{A}+01-02")], None, format!("rename {d}/{A}+01-02 -> {d}/{A}+00-03")),
            ("bless good", vec![format!("{A}+01-02")], None, format!("rename {d}/{A}+01-02 -> {d}/{A}")),
            ("bless bad", vec![format!("{A}+01-02")], None, format!("rename {d}/{A}+01-02 -> {d}/{A}+00-02")),
            ("bless never counted", vec![], None, format!("create - -> {d}/{A}")),
        ];
        for (what, files, given, op) in cases {
            let m = reduce(&files, &known());
            let change = given.or_else(|| match what {
                "bless good" | "bless never counted" => m.bless(A, true),
                "bless bad" => m.bless(A, false),
                _ => m.attempt(A, 3, true),
            });
            let change = change.unwrap_or_else(|| panic!("{what}: no change"));
            let mut r = Recorder::new();
            apply(&mut r, t.path(), &[change]).unwrap();
            let flags = if op.starts_with("create") { "O_EXCL 0644" } else { "RENAME_NOREPLACE" };
            assert_eq!(r.lines(), with_query(&p, change_lines(&p, &op, flags)), "{what}");
        }
    }

    #[test]
    fn nothing_to_change_touches_nothing() {
        let t = root();
        let mut r = Recorder::new();
        apply(&mut r, t.path(), &[]).unwrap();
        assert!(r.calls.is_empty());
    }

    #[test]
    fn the_first_change_creates_the_directory_durably() {
        let t = TempDir::new();
        let p = t.path().display().to_string();
        let mut r = Recorder::new();
        apply(&mut r, t.path(), &[Change::Create { name: format!("{A}+02-01") }]).unwrap();
        let mut want = vec![
            format!("query  read-only? {p}"),
            format!("mkdir  - -> {p}/ostree/rootstock [0755]"),
            format!("fsync  - -> {p}/ostree [directory]"),
            format!("syncfs - -> {p}/ostree [filesystem]"),
        ];
        want.extend(change_lines(&p, &format!("create - -> {p}/ostree/rootstock/{A}+02-01"), "O_EXCL 0644"));
        assert_eq!(r.lines(), want);
    }

    #[test]
    fn repairs_then_bless_each_made_durable() {
        let t = root();
        let p = t.path().display().to_string();
        let d = format!("{p}/ostree/rootstock");
        let files: Vec<String> =
            [format!("{A}+02-01"), format!("{A}+01-02"), "os-gone.0".into()].into_iter().collect();
        let m = reduce(&files, &known());
        let mut changes = m.repairs.clone();
        changes.extend(m.bless(A, true));
        let mut r = Recorder::new();
        apply(&mut r, t.path(), &changes).unwrap();
        let mut want = vec![];
        // Removals in a row are made durable once, after the last.
        want.push(format!("unlink - -> {d}/os-gone.0 [file]"));
        want.extend(change_lines(&p, &format!("unlink - -> {d}/{A}+02-01"), "file"));
        want.extend(change_lines(&p, &format!("rename {d}/{A}+01-02 -> {d}/{A}"), "RENAME_NOREPLACE"));
        assert_eq!(r.lines(), with_query(&p, want));
    }

    /// The remount dance around two changes on a read-only root.
    fn dance(p: &str, whole_fs: bool) -> Vec<String> {
        let d = format!("{p}/ostree/rootstock");
        let mut want = vec![
            format!("query  read-only? {p}"),
            format!("mount  none -> {p} [MS_REMOUNT|MS_BIND]"),
            format!("query  read-only? {p}"),
        ];
        if whole_fs {
            want.push(format!("mount  none -> {p} [MS_REMOUNT]"));
        }
        want.extend(change_lines(p, &format!("rename {d}/{A}+02-01 -> {d}/{A}+01-02"), "RENAME_NOREPLACE"));
        want.extend(change_lines(p, &format!("unlink - -> {d}/os-gone.0"), "file"));
        want.push(if whole_fs {
            format!("mount  none -> {p} [MS_REMOUNT|MS_RDONLY]")
        } else {
            format!("mount  none -> {p} [MS_REMOUNT|MS_BIND|MS_RDONLY]")
        });
        want
    }

    fn two_changes() -> Vec<Change> {
        vec![
            Change::Rename { from: format!("{A}+02-01"), to: format!("{A}+01-02") },
            Change::Remove { name: "os-gone.0".into() },
        ]
    }

    #[test]
    fn a_read_only_root_is_made_writable_for_the_change_and_back() {
        let t = root();
        let p = t.path().display().to_string();
        for whole_fs in [false, true] {
            let mut r = Recorder::new().with_read_only(t.path(), whole_fs);
            apply(&mut r, t.path(), &two_changes()).unwrap();
            assert_eq!(r.lines(), dance(&p, whole_fs), "whole filesystem: {whole_fs}");
            let mut after = r;
            assert_eq!(after.query(&Query::ReadOnly { path: t.path().into() }), Ok(true), "read-only again");
        }
    }

    #[test]
    fn a_failure_at_each_step_is_named_and_stops_there_read_only_again() {
        let t = root();
        let p = t.path().display().to_string();
        let d = format!("{p}/ostree/rootstock");
        let full = dance(&p, true);
        let bind_ro = format!("mount  none -> {p} [MS_REMOUNT|MS_BIND|MS_RDONLY]");
        let fs_ro = format!("mount  none -> {p} [MS_REMOUNT|MS_RDONLY]");
        let rofs = || Errno::ROFS.to_string();
        // For each call failed: the error (step, path) or none, and what the
        // recorder saw after the failed call.
        let cases: Vec<(usize, (&str, String), Vec<String>)> = vec![
            // statvfs failed: taken as writable; the change itself then fails
            // with EROFS, naming it.
            (1, ("rename", format!("{d}/{A}+02-01")), vec![]),
            (2, ("remount read-write", p.clone()), vec![]),
            // statvfs failed after the bind remount: the filesystem is taken
            // as writable, the change fails with EROFS, the bind goes back.
            (3, ("rename", format!("{d}/{A}+02-01")), vec![]),
            (4, ("remount read-write", p.clone()), vec![bind_ro.clone()]),
            (5, ("rename", format!("{d}/{A}+02-01")), vec![fs_ro.clone()]),
            (6, ("fsync", d.clone()), vec![fs_ro.clone()]),
            (7, ("syncfs", d.clone()), vec![fs_ro.clone()]),
            (8, ("remove", format!("{d}/os-gone.0")), vec![fs_ro.clone()]),
            (9, ("fsync", d.clone()), vec![fs_ro.clone()]),
            (10, ("syncfs", d.clone()), vec![fs_ro.clone()]),
            (11, ("remount read-only again", p.clone()), vec![]),
        ];
        assert_eq!(cases.len(), full.len(), "a case per step");
        for (n, want_err, after) in cases {
            let mut r = Recorder::failing_at(n, Errno::IO).with_read_only(t.path(), true);
            let err = apply(&mut r, t.path(), &two_changes()).unwrap_err();
            let (step, path) = want_err;
            assert_eq!((err.step, err.path.display().to_string()), (step, path.clone()), "fail at {n}");
            let text = err.to_string();
            assert!(text.starts_with(&format!("boot counting: {step} {path}: ")), "{text}");
            let lines = r.lines();
            if [1, 3].contains(&n) {
                // The failed statvfs, then the change that met the read-only mount.
                assert_eq!(err.errno, Errno::ROFS, "fail at {n}: {text}");
                assert!(text.ends_with(&rofs()), "{text}");
                let mut want: Vec<String> = full[..n].to_vec();
                want.push(format!("rename {d}/{A}+02-01 -> {d}/{A}+01-02 [RENAME_NOREPLACE]"));
                if n == 3 {
                    want.push(bind_ro.clone());
                }
                assert_eq!(lines, want, "fail at {n}");
            } else {
                assert_eq!(err.errno, Errno::IO, "fail at {n}");
                assert_eq!(lines[..n], full[..n], "fail at {n}: the same calls up to the failed one");
                assert_eq!(lines[n..], after[..], "fail at {n}: then only the way back to read-only");
            }
            if n != 11 {
                assert_eq!(r.query(&Query::ReadOnly { path: t.path().into() }), Ok(true), "fail at {n}");
            }
        }
    }

    #[test]
    fn a_failure_picked_by_operation_names_it() {
        // The second marker operation (the unlink) fails with EACCES.
        let t = root();
        let d = t.path().join(MARKER_DIR);
        let mut r = Recorder::failing_on(|c| matches!(c, Call::Op(Op::Unlink { .. })), Errno::ACCESS);
        let err = apply(&mut r, t.path(), &two_changes()).unwrap_err();
        assert_eq!(err, CountingError { step: "remove", path: d.join("os-gone.0"), errno: Errno::ACCESS });
        assert_eq!(
            err.to_string(),
            format!("boot counting: remove {}/os-gone.0: EACCES 13 (Permission denied)", d.display())
        );
        assert!(matches!(r.calls.last(), Some(Call::Op(Op::Unlink { .. }))), "nothing after it");
    }
}
