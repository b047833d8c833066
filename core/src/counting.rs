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
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::errno::Errno;

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
        match self {
            Change::Create { name } => write!(f, "create {name}"),
            Change::Rename { from, to } => write!(f, "rename {from} -> {to}"),
            Change::Remove { name } => write!(f, "remove {name}"),
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
    let mut sorted: Vec<&String> = files.iter().collect();
    sorted.sort();
    for f in sorted {
        if f.starts_with('.') {
            continue; // not ours (editor or tool temporaries)
        }
        let m = parse_marker(f);
        if known.contains(&m.base) {
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

/// A failed change of the marker directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("boot counting: {step} {}: {errno}", path.display())]
pub struct CountingError {
    pub step: &'static str,
    pub path: PathBuf,
    pub errno: Errno,
}

/// The marker directory on a mounted physical root.
pub struct MarkerDir {
    path: PathBuf,
}

impl MarkerDir {
    pub fn new(physical_root: &Path) -> MarkerDir {
        MarkerDir { path: physical_root.join(MARKER_DIR) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file names in the directory (none when it does not exist yet).
    pub fn list(&self) -> Result<Vec<String>, CountingError> {
        match std::fs::read_dir(&self.path) {
            Ok(rd) => Ok(rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(CountingError { step: "read", path: self.path.clone(), errno: Errno::from_io(&e) }),
        }
    }

    /// Apply changes, each made durable before the next: the operation, an
    /// fsync of the directory, a syncfs of its filesystem.
    pub fn apply(&self, changes: &[Change]) -> Result<(), CountingError> {
        if changes.is_empty() {
            return Ok(());
        }
        let err = |step, path: &Path| {
            let path = path.to_path_buf();
            move |e: rustix::io::Errno| CountingError { step, path, errno: e.into() }
        };
        if !self.path.is_dir() {
            std::fs::create_dir_all(&self.path).map_err(|e| CountingError {
                step: "create",
                path: self.path.clone(),
                errno: Errno::from_io(&e),
            })?;
            if let Some(parent) = self.path.parent() {
                sync_dir(parent).map_err(err("fsync", parent))?;
            }
        }
        use rustix::fs::{Mode, OFlags};
        let dir =
            rustix::fs::open(&self.path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(err("open", &self.path))?;
        for c in changes {
            match c {
                Change::Create { name } => {
                    let p = self.path.join(name);
                    // O_EXCL: never replace a marker another boot wrote.
                    rustix::fs::openat(
                        &dir,
                        name.as_str(),
                        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    )
                    .map_err(err("create", &p))?;
                }
                Change::Rename { from, to } => {
                    rustix::fs::renameat_with(
                        &dir,
                        from.as_str(),
                        &dir,
                        to.as_str(),
                        rustix::fs::RenameFlags::NOREPLACE,
                    )
                    .map_err(err("rename", &self.path.join(from)))?;
                }
                Change::Remove { name } => {
                    rustix::fs::unlinkat(&dir, name.as_str(), rustix::fs::AtFlags::empty())
                        .map_err(err("remove", &self.path.join(name)))?;
                }
            }
            durable(&dir).map_err(err("fsync", &self.path))?;
        }
        Ok(())
    }
}

/// Apply `changes` on the physical root mounted at `mount_point`, making it
/// writable just for the changes when it is mounted read-only: first the
/// mount alone (a read-only bind), then the filesystem; restored afterwards.
pub fn apply_writable(mount_point: &Path, dir: &MarkerDir, changes: &[Change]) -> Result<(), CountingError> {
    use rustix::fs::StatVfsMountFlags;
    use rustix::mount::{MountFlags, mount_remount};
    if changes.is_empty() {
        return Ok(());
    }
    let read_only = |p: &Path| {
        rustix::fs::statvfs(p).map(|s| s.f_flag.contains(StatVfsMountFlags::RDONLY)).unwrap_or(false)
    };
    if !read_only(mount_point) {
        return dir.apply(changes);
    }
    let err = |step| {
        move |e: rustix::io::Errno| CountingError { step, path: mount_point.to_path_buf(), errno: e.into() }
    };
    log::info!(
        "boot counting: {} is read-only: remounting it read-write for the change",
        mount_point.display()
    );
    mount_remount(mount_point, MountFlags::BIND, "").map_err(err("remount read-write"))?;
    let whole_fs = read_only(mount_point);
    if whole_fs && let Err(e) = mount_remount(mount_point, MountFlags::empty(), "") {
        // Best effort: put the mount back as it was before reporting.
        let _ = mount_remount(mount_point, MountFlags::BIND | MountFlags::RDONLY, "");
        return Err(err("remount read-write")(e));
    }
    let result = dir.apply(changes);
    let restore = if whole_fs { MountFlags::RDONLY } else { MountFlags::BIND | MountFlags::RDONLY };
    mount_remount(mount_point, restore, "").map_err(err("remount read-only again"))?;
    result
}

fn sync_dir(path: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    durable(&fd)
}

fn durable(dir: &OwnedFd) -> rustix::io::Result<()> {
    rustix::fs::fsync(dir)?;
    rustix::fs::syncfs(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "os-aaaa.0";
    const B: &str = "os-bbbb.0";

    fn known() -> Vec<String> {
        vec![A.to_string(), B.to_string()]
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

    #[test]
    fn changes_are_applied_on_disk() {
        let t = crate::testutil::TempDir::new();
        let d = MarkerDir::new(t.path());
        assert_eq!(d.list().unwrap(), Vec::<String>::new());
        d.apply(&[Change::Create { name: "os-aaaa.0+02-01".into() }]).unwrap();
        d.apply(&[Change::Rename { from: "os-aaaa.0+02-01".into(), to: "os-aaaa.0+01-02".into() }]).unwrap();
        assert_eq!(d.list().unwrap(), vec!["os-aaaa.0+01-02".to_string()]);
        // NOREPLACE / EXCL: a change that would overwrite fails, naming the path.
        let err = d.apply(&[Change::Create { name: "os-aaaa.0+01-02".into() }]).unwrap_err();
        assert_eq!(err.errno, Errno::EXIST);
        d.apply(&[Change::Create { name: "os-aaaa.0".into() }]).unwrap();
        let err = d
            .apply(&[Change::Rename { from: "os-aaaa.0+01-02".into(), to: "os-aaaa.0".into() }])
            .unwrap_err()
            .to_string();
        assert!(err.contains("rename") && err.contains("EEXIST"), "{err}");
        d.apply(&[Change::Remove { name: "os-aaaa.0+01-02".into() }]).unwrap();
        assert_eq!(d.list().unwrap(), vec!["os-aaaa.0".to_string()]);
    }
}
