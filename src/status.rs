//! `rootstock status`: the deployments, which is default, rollback, booted.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use rootstock_core::counting::{self, BootCounting, Change, Count};
use rootstock_core::history::{History, Record};
use rootstock_core::layout::{self, LayoutError};
use rootstock_core::plan::PENDING_STATE;
use rootstock_core::seam::System;
use rootstock_core::soft_reboot;
use rootstock_core::state::{BootState, Reason};

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub index: usize,
    pub stateroot: String,
    pub id: String,
    pub version: String,
    pub default: bool,
    pub rollback: bool,
    pub booted: bool,
    /// Boot counting: good, bad, indeterminate or never.
    pub counting: Count,
    /// Booted on its last try, not blessed yet: `counting` is bad on disk
    /// (so that a reboot falls back) but this boot has not failed.
    pub last_try: bool,
    /// The boot loader's own counter, when its entry has one (systemd-boot's
    /// `+LEFT-DONE`): then the boot loader counts it, not rootstock. From
    /// the ESP's entry when an ESP is mounted ([`with_esp`]: its names are
    /// the live ones), else from the physical root's `/boot`.
    pub loader: Option<LoaderCount>,
    /// The entry's `ostree=`, to find its entry on the ESP.
    #[serde(skip)]
    pub ostree_arg: String,
}

/// systemd-boot's counter of an entry ([`counting::loader_count`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LoaderCount {
    pub left: u32,
    pub done: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub deployments: Vec<Row>,
    /// `/run/rootstock/state`, when rootstock prepared this boot (after a
    /// soft reboot, what `prepare-soft-reboot` recorded).
    pub boot: Option<BootState>,
    /// A soft reboot prepared and not entered yet.
    pub prepared: Option<BootState>,
    /// Boot loader entries that could not be used.
    pub problems: Vec<String>,
}

/// The (device, inode) of the booted deployment's directory: `root`'s own
/// (the plain layout: the same inode, as libostree decides); else the
/// directory whose `etc` is `root/etc` (a composefs root is an overlay,
/// its `/etc` the deployment's own, bound); else what `run/ostree-booted`
/// records (`backing-root-device-inode`, ostree's answer to the same
/// question, written at boot).
fn booted_dir_id(physical_root: &Path, root: &Path, run: &Path) -> Option<(u64, u64)> {
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let (root_id, etc_id) = (id(root)?, id(&root.join("etc")));
    for (stateroot, dep) in layout::deployment_dirs(physical_root).unwrap_or_default() {
        let dir = physical_root.join(layout::deploy_dir(&stateroot, &dep));
        let this = id(&dir);
        if this == Some(root_id) || (etc_id.is_some() && id(&dir.join("etc")) == etc_id) {
            return this;
        }
    }
    let booted = rootstock_core::confine::read_file(
        &run.join("ostree-booted"),
        rootstock_core::confine::SMALL_FILE_CAP,
    )
    .ok()?;
    match rootstock_core::gvariant_read::lookup(&booted, "backing-root-device-inode") {
        Ok(Some(v)) if v.ty == b"(tt)" && v.value.len() == 16 => {
            let word = |at: usize| u64::from_le_bytes(v.value[at..at + 8].try_into().unwrap_or_default());
            Some((word(0), word(8)))
        }
        _ => None,
    }
}

/// Gather the status. `physical_root` is where the physical root is mounted
/// (`/sysroot` in a booted system), `root` is the running root (`/`), `run`
/// the runtime directory: the booted deployment is found by
/// [`booted_dir_id`].
pub fn gather(physical_root: &Path, root: &Path, run: &Path) -> Result<Status, LayoutError> {
    let ds = layout::read_deployments(physical_root)?;
    let markers = BootCounting::read(physical_root);
    let root_id = booted_dir_id(physical_root, root, run);
    let mut deployments: Vec<Row> = ds
        .list
        .iter()
        .map(|d| {
            let id = std::fs::metadata(physical_root.join(d.dir())).ok().map(|m| (m.dev(), m.ino()));
            Row {
                index: d.index,
                stateroot: d.stateroot.clone(),
                id: d.id(),
                version: d.version.clone(),
                default: d.index == 0,
                rollback: d.index == 1,
                booted: id.is_some() && id == root_id,
                counting: markers.count(&counting::base_name(&d.stateroot, &d.id())),
                last_try: false,
                loader: counting::loader_count(&d.entry).map(|(left, done)| LoaderCount { left, done }),
                ostree_arg: d.ostree_arg.clone(),
            }
        })
        .collect();
    let mut problems: Vec<String> = ds.problems.iter().map(|p| p.to_string()).collect();
    problems.extend(markers.unreadable().map(|e| format!("{e}: boot counting states are not known")));
    let mut read_state = |file: &Path| {
        // O_NONBLOCK, regular, capped: a FIFO there never blocks `status`.
        let read = rootstock_core::confine::read_text(file, rootstock_core::confine::SMALL_FILE_CAP);
        match read.ok().map(|t| BootState::parse(&t)) {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                problems.push(format!("{}: {e}: not written by rootstock", file.display()));
                None
            }
            None => None,
        }
    };
    let state = read_state(&run.join("rootstock/state"));
    let pending = read_state(&run.join(PENDING_STATE));
    // After `systemctl soft-reboot`, the state prepare-soft-reboot left is
    // this boot's once `/` is the deployment it names.
    let dir_id = |selected: &str| {
        let (stateroot, id) = selected.split_once('/')?;
        let m = std::fs::metadata(physical_root.join(layout::deploy_dir(stateroot, id))).ok()?;
        Some((m.dev(), m.ino()))
    };
    let boot = soft_reboot::current_state(state, pending.clone(), root_id, dir_id);
    let prepared = pending.filter(|p| boot.as_ref() != Some(p));
    // This boot made its deployment bad on disk (its last try): it has not
    // failed, it is not blessed yet.
    for r in &mut deployments {
        r.last_try = r.booted
            && matches!(r.counting, Count::Bad { .. })
            && boot.as_ref().is_some_and(|b| {
                b.selected == format!("{}/{}", r.stateroot, r.id) && b.counting == r.counting
            });
    }
    Ok(Status { deployments, boot, prepared, problems })
}

/// The booted deployment, found as `gather` does: its stateroot and
/// `$csum.$serial`.
pub fn booted_deployment(
    physical_root: &Path,
    root: &Path,
    run: &Path,
) -> Result<Option<(String, String)>, LayoutError> {
    let root_id = booted_dir_id(physical_root, root, run);
    for (stateroot, id) in layout::deployment_dirs(physical_root)? {
        let dir = physical_root.join(layout::deploy_dir(&stateroot, &id));
        let this = std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()));
        if this.is_some() && this == root_id {
            return Ok(Some((stateroot, id)));
        }
    }
    Ok(None)
}

/// The booted deployment's marker base name ([`booted_deployment`]).
pub fn booted_base(physical_root: &Path, root: &Path, run: &Path) -> Result<Option<String>, LayoutError> {
    Ok(booted_deployment(physical_root, root, run)?
        .map(|(stateroot, id)| counting::base_name(&stateroot, &id)))
}

/// The boot loader's live counters, from the ESP (`explicit`, else the
/// one mounted under `root`: [`crate::esp::find`]): each deployment's
/// entry there (the one whose `ostree=` is the deployment's) replaces what
/// the physical root's `/boot` says; an entry without a counter there means
/// the boot loader no longer counts it (blessed). False when no ESP was
/// found (the counters stay `/boot`'s).
pub fn with_esp(s: &mut Status, root: &Path, explicit: Option<&Path>) -> bool {
    let Some(esp) = crate::esp::find(root, explicit) else { return false };
    let (entries, problems) = crate::esp::entries(&esp);
    s.problems.extend(problems);
    for r in &mut s.deployments {
        if let Some(e) = entries.iter().find(|e| e.ostree.as_deref() == Some(r.ostree_arg.as_str())) {
            r.loader = counting::loader_count(&e.file).map(|(left, done)| LoaderCount { left, done });
        }
    }
    true
}

/// Bless the booted deployment (the one whose directory is `root`): good,
/// or bad with `good` false. Returns its marker name and the change made
/// (`None`: it already was). Duplicate and stale markers are removed first,
/// best effort.
pub fn bless(
    physical_root: &Path,
    root: &Path,
    run: &Path,
    good: bool,
    sys: &mut dyn System,
) -> Result<(String, Option<Change>), crate::Error> {
    let base = booted_base(physical_root, root, run)?.ok_or_else(|| crate::Error::NotBooted {
        sysroot: physical_root.to_path_buf(),
        root: root.to_path_buf(),
    })?;
    // One writer at a time: the markers are read and changed under the
    // lock every command that counts takes.
    rootstock_core::lock::with(sys, &rootstock_core::lock::markers(physical_root), |sys| {
        let mut counting = BootCounting::read(physical_root);
        if let Some(e) = counting.unreadable() {
            return Err(crate::Error::Counting(e.clone()));
        }
        counting.repair(sys);
        let change = counting.bless(&base, good)?;
        if let Some(c) = &change {
            counting.write(sys, c)?;
        }
        Ok((base, change))
    })
}

/// The counting column: a booted deployment on its last try reads as bad
/// on disk (`+00-DD`) until it is blessed, but it has not failed yet.
fn counting_text(r: &Row) -> String {
    match r.loader {
        Some(LoaderCount { left: 0, done }) => return format!("boot loader: bad ({done} done)"),
        Some(LoaderCount { left, done }) => return format!("boot loader: {left} left, {done} done"),
        None => {}
    }
    match r.counting {
        Count::Bad { done } if r.last_try => format!("last try ({done} done): bless it"),
        c => c.to_string(),
    }
}

/// The human table.
pub fn render(s: &Status) -> String {
    let mut out = format!(
        "  {:<5} {:<12} {:<72} {:<8} {:<34} {}\n",
        "INDEX", "STATEROOT", "DEPLOYMENT", "VERSION", "COUNTING", "ROLE"
    );
    for r in &s.deployments {
        let mut roles = Vec::new();
        if r.default {
            roles.push("default");
        }
        if r.rollback {
            roles.push("rollback");
        }
        if r.booted {
            roles.push("booted");
        }
        out.push_str(&format!(
            "{} {:<5} {:<12} {:<72} {:<8} {:<34} {}\n",
            if r.booted { '*' } else { ' ' },
            r.index,
            r.stateroot,
            r.id,
            r.version,
            counting_text(r),
            roles.join(", ")
        ));
    }
    if let Some(b) = &s.boot {
        out.push_str(&format!("\nthis boot: {} ({}; requested {})\n", b.selected, b.reason, b.requested));
        if b.reason == Reason::Fallback {
            out.push_str("  this is a FALLBACK boot: the requested deployment could not boot\n");
        }
        for k in &b.skipped {
            out.push_str(&format!("  skipped {k}\n"));
        }
    }
    if let Some(p) = &s.prepared {
        out.push_str(&format!(
            "\nprepared for `systemctl soft-reboot`: {} ({}; `rootstock prepare-soft-reboot --reset` undoes it)\n",
            p.selected, p.counting
        ));
    }
    for p in &s.problems {
        out.push_str(&format!("warning: {p}\n"));
    }
    out
}

/// `status --history`: the boot history, oldest first, each record with
/// the verdict an orchestrator should read ([`History::verdicts`]).
#[derive(Debug, Clone, Serialize)]
pub struct HistoryView {
    pub records: Vec<Record>,
    /// Records that could not be read, and why.
    pub problems: Vec<String>,
}

/// Read the history; `boot_id` is the running kernel's, `booted` the
/// booted deployment (`$stateroot/$csum.$serial`), to tell the running
/// attempt from one that ended without a verdict.
pub fn history(physical_root: &Path, boot_id: &str, booted: Option<&str>) -> HistoryView {
    let h = History::read(physical_root);
    let verdicts = h.verdicts(boot_id, booted);
    let records = h.records.into_iter().zip(verdicts).map(|(r, verdict)| Record { verdict, ..r }).collect();
    HistoryView { records, problems: h.problems }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60)
}

/// The history as a table, newest last.
pub fn render_history(h: &HistoryView) -> String {
    let mut out = format!(
        "{:<5} {:<19} {:<12} {:<11} {:<11} {:<16} {}\n",
        "SEQ", "TIME (UTC)", "VERSION", "HOW", "REASON", "VERDICT", "DEPLOYMENT"
    );
    for r in &h.records {
        out.push_str(&format!(
            "{:<5} {:<19} {:<12} {:<11} {:<11} {:<16} {}\n",
            r.seq,
            utc(r.time),
            r.version,
            r.how.to_string(),
            r.reason.to_string(),
            r.verdict.to_string(),
            r.deployment
        ));
        out.push_str(&format!(
            "      counting: {}; boot {} (userspace {})\n",
            r.counting, r.boot_id, r.userspace
        ));
        for f in &r.from {
            out.push_str(&format!("      instead of {f}\n"));
        }
        if !r.units.is_empty() {
            out.push_str(&format!("      units: {}\n", r.units.join(", ")));
        }
        if !r.action.is_empty() {
            out.push_str(&format!("      action: {}\n", r.action));
        }
    }
    if h.records.is_empty() {
        out.push_str("(no boot attempts recorded)\n");
    }
    for p in &h.problems {
        out.push_str(&format!("warning: {p}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use rootstock_core::cmdline::KernelArgs;
    use rootstock_core::config::Config;
    use rootstock_core::counting::{Count, MARKER_DIR};
    use rootstock_core::prepare;
    use rootstock_core::seam::Op;
    use rootstock_core::seam::fake::Recorder;
    use rootstock_core::soft_reboot;
    use rootstock_core::testutil::{C1, C2, TempDir, fake_physical_root};

    use super::*;

    const KVER: &str = "6.1.0-test";

    fn default_dir(root: &Path) -> PathBuf {
        root.join(format!("ostree/deploy/os/deploy/{C2}.0"))
    }

    /// The marker changes a recorder saw, by name.
    fn marker_ops(r: &Recorder) -> Vec<String> {
        r.operations()
            .filter_map(|op| match op {
                Op::CreateExclusive { dir, name } if dir.ends_with(MARKER_DIR) => {
                    Some(format!("create {name}"))
                }
                Op::RenameNoReplace { dir, from, to } if dir.ends_with(MARKER_DIR) => {
                    Some(format!("rename {from} -> {to}"))
                }
                Op::Unlink { dir, name } if dir.ends_with(MARKER_DIR) => Some(format!("remove {name}")),
                _ => None,
            })
            .collect()
    }

    /// What each of the four entry points does with the same markers: the
    /// boot (prepare-root), prepare-soft-reboot, bless and status.
    struct Seen {
        boot: (Vec<String>, Count),
        soft_reboot: (Vec<String>, Count),
        bless: Result<Vec<String>, String>,
        status: Count,
    }

    fn through_all_four(markers: &[&str], symlinked_dir: bool) -> Seen {
        let t = TempDir::new();
        let root = t.path();
        fake_physical_root(root, "r", Some(KVER));
        let dir = root.join(MARKER_DIR);
        if symlinked_dir {
            std::os::unix::fs::symlink("../boot", &dir).unwrap();
        } else {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for m in markers {
            std::fs::write(dir.join(m), "").unwrap();
        }
        let boot_opts = prepare::Options {
            sysroot: root.to_path_buf(),
            run: root.join("run"),
            args: KernelArgs::parse("rootstock.tries=3").unwrap(),
            config: Config::default(),
            init: None,
            running_kver: None,
            carried: None,
            loader_counted: None,
        };
        let mut r = Recorder::new();
        let o = prepare::run(&boot_opts, &mut r).unwrap();
        assert_eq!(o.deployment.csum, C2, "the default boots");
        let boot = (marker_ops(&r), o.state.counting);

        std::fs::create_dir_all(root.join("run")).unwrap();
        let soft_opts = soft_reboot::Options {
            sysroot: root.to_path_buf(),
            run: root.join("run"),
            nextroot: root.join("run/nextroot"),
            boot: root.join("boot"),
            request: None,
            config: Config::default(),
            running_kver: KVER.into(),
            kexec: false,
            tries: Some(3),
            composefs: None,
            // No mounts: a recorder makes none.
            mountinfo: PathBuf::from("/dev/null"),
            rollback_from: None,
        };
        let mut r = Recorder::new();
        let soft_reboot::Prepared::LaidOut { state, .. } = soft_reboot::prepare(&soft_opts, &mut r).unwrap()
        else {
            panic!("laid out, not kexec")
        };
        let soft_reboot = (marker_ops(&r), state.counting);

        let mut r = Recorder::new();
        let bless = bless(root, &default_dir(root), &root.join("run"), true, &mut r)
            .map(|_| marker_ops(&r))
            .map_err(|e| e.to_string());

        let s = gather(root, &default_dir(root), &root.join("run")).unwrap();
        let row = s.deployments.iter().find(|d| d.id == format!("{C2}.0")).unwrap();
        Seen { boot, soft_reboot, bless, status: row.counting }
    }

    #[test]
    fn the_four_entry_points_read_and_change_the_markers_alike() {
        let b = format!("os-{C2}.0");
        let old = format!("os-{C1}.0");
        let ind = |left, done| Count::Indeterminate { left, done };
        // markers, the changes a boot or a soft reboot makes and the count
        // it leaves, the changes bless makes, the count status shows.
        type Case = (Vec<String>, Vec<String>, Count, Vec<String>, Count);
        let cases: Vec<Case> = vec![
            // Never counted: armed with 3 tries, this attempt counted.
            (vec![], vec![format!("create {b}+02-01")], ind(2, 1), vec![format!("create {b}")], Count::Never),
            (
                vec![format!("{b}+02-01")],
                vec![format!("rename {b}+02-01 -> {b}+01-02")],
                ind(1, 2),
                vec![format!("rename {b}+02-01 -> {b}")],
                ind(2, 1),
            ),
            // A duplicate and a marker of a deployment that is gone: removed
            // first; the fewest tries left wins.
            (
                vec![format!("{b}+02-01"), format!("{b}+01-02"), "os-gone.0".into(), format!("{old}")],
                vec![
                    "remove os-gone.0".into(),
                    format!("remove {b}+02-01"),
                    format!("rename {b}+01-02 -> {b}+00-03"),
                ],
                Count::Bad { done: 3 },
                vec![
                    "remove os-gone.0".into(),
                    format!("remove {b}+02-01"),
                    format!("rename {b}+01-02 -> {b}"),
                ],
                ind(1, 2),
            ),
            // Blessed: never counted again.
            (vec![b.clone()], vec![], Count::Good, vec![], Count::Good),
        ];
        for (markers, changes, after, blessed, shown) in cases {
            let names: Vec<&str> = markers.iter().map(String::as_str).collect();
            let seen = through_all_four(&names, false);
            assert_eq!(seen.boot, (changes.clone(), after), "boot, markers {markers:?}");
            assert_eq!(seen.soft_reboot, (changes, after), "soft reboot, markers {markers:?}");
            assert_eq!(seen.bless, Ok(blessed), "bless, markers {markers:?}");
            assert_eq!(seen.status, shown, "status, markers {markers:?}");
        }
    }

    #[test]
    fn unreadable_markers_count_nothing_anywhere_and_bless_says_why() {
        let seen = through_all_four(&[], true);
        assert_eq!(seen.boot, (vec![], Count::Never), "the boot goes on, uncounted");
        assert_eq!(seen.soft_reboot, (vec![], Count::Never), "the soft reboot too");
        let err = seen.bless.unwrap_err();
        assert!(err.contains("it must be a real directory, not a symlink"), "{err}");
        assert_eq!(seen.status, Count::Never);
    }

    fn row(index: usize, id: &str, counting: Count, booted: bool, last_try: bool) -> Row {
        Row {
            index,
            stateroot: "os".into(),
            id: id.into(),
            version: index.to_string(),
            default: index == 0,
            rollback: index == 1,
            booted,
            counting,
            last_try,
            loader: None,
            ostree_arg: format!("/ostree/boot.1/os/b/{index}"),
        }
    }

    /// systemd-boot renames the ESP's entries, not the physical root's: the
    /// ESP's names are the counters shown.
    #[test]
    fn the_esps_entries_are_the_live_counters() {
        let t = rootstock_core::testutil::TempDir::new();
        let dir = t.path().join("loader/entries");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ostree-2+0-2.conf"), "options ostree=/ostree/boot.1/os/b/0\n").unwrap();
        std::fs::write(dir.join("ostree-1.conf"), "options ostree=/ostree/boot.1/os/b/1\n").unwrap();
        let mut rows =
            vec![row(0, "a.0", Count::Never, false, false), row(1, "b.0", Count::Never, true, false)];
        rows[0].loader = Some(LoaderCount { left: 2, done: 0 }); // as ostree named it on /boot
        rows[1].loader = Some(LoaderCount { left: 2, done: 0 });
        let mut s = Status { deployments: rows, boot: None, prepared: None, problems: vec![] };
        assert!(with_esp(&mut s, Path::new("/nonexistent"), Some(t.path())));
        assert_eq!(counting_text(&s.deployments[0]), "boot loader: bad (2 done)");
        assert_eq!(s.deployments[1].loader, None, "blessed: no counter left");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn the_boot_loaders_counter_is_shown_where_it_counts() {
        let mut r = row(0, &format!("{C2}.0"), Count::Never, true, false);
        r.loader = Some(LoaderCount { left: 2, done: 1 });
        assert_eq!(counting_text(&r), "boot loader: 2 left, 1 done");
        r.loader = Some(LoaderCount { left: 0, done: 3 });
        assert_eq!(counting_text(&r), "boot loader: bad (3 done)");
    }

    #[test]
    fn every_header_stands_over_its_column() {
        let s = Status {
            deployments: vec![
                row(0, &format!("{C2}.0"), Count::Bad { done: 1 }, true, true),
                row(1, &format!("{C1}.0"), Count::Indeterminate { left: 2, done: 1 }, false, false),
            ],
            boot: None,
            prepared: None,
            problems: vec![],
        };
        let text = render(&s);
        let lines: Vec<&str> = text.lines().collect();
        let header = lines[0];
        let words: Vec<(usize, &str)> = header
            .char_indices()
            .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
            .map(|(i, _)| (i, header[i..].split(' ').next().unwrap_or("")))
            .collect();
        let names: Vec<&str> = words.iter().map(|(_, w)| *w).collect();
        assert_eq!(names, ["INDEX", "STATEROOT", "DEPLOYMENT", "VERSION", "COUNTING", "ROLE"]);
        let values = [
            ["0", "os", &format!("{C2}.0"), "0", "last try (1 done): bless it", "default, booted"],
            ["1", "os", &format!("{C1}.0"), "1", "indeterminate (2 left, 1 done)", "rollback"],
        ];
        for (line, want) in lines[1..3].iter().zip(values) {
            for ((col, name), value) in words.iter().zip(want) {
                assert!(line[*col..].starts_with(value), "{name} over {value:?} in {line:?}");
                assert_eq!(&line[col - 1..*col], " ", "{name}: the column starts after a space in {line:?}");
            }
        }
    }

    #[test]
    fn a_booted_deployment_on_its_last_try_is_not_reported_as_failed() {
        let t = TempDir::new();
        let root = t.path();
        fake_physical_root(root, "r", None);
        std::fs::create_dir_all(root.join(MARKER_DIR)).unwrap();
        std::fs::write(root.join(MARKER_DIR).join(format!("os-{C2}.0+00-01")), "").unwrap();
        std::fs::create_dir_all(root.join("run/rootstock")).unwrap();
        let this_boot = |counting: &str| {
            format!(
                "requested=x\nselected=os/{C2}.0\nindex=0\nreason=default\ninit=/sbin/init\ncounting={counting}\n"
            )
        };
        std::fs::write(root.join("run/rootstock/state"), this_boot("bad (1 tries failed)")).unwrap();
        let s = gather(root, &default_dir(root), &root.join("run")).unwrap();
        assert!(s.deployments[0].last_try, "this boot made it bad on disk: its last try");
        assert!(render(&s).contains("last try (1 done): bless it"), "{}", render(&s));
        // Booted with that marker already there (the boot did not count:
        // every deployment was bad): it did fail.
        std::fs::write(root.join("run/rootstock/state"), this_boot("never counted")).unwrap();
        let s = gather(root, &default_dir(root), &root.join("run")).unwrap();
        assert!(!s.deployments[0].last_try);
        assert!(render(&s).contains("bad (1 tries failed)"), "{}", render(&s));
        // Not booted: what is on disk.
        let s = gather(root, &root.join("run"), &root.join("run")).unwrap();
        assert!(!s.deployments[0].last_try);
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_428_799), "2026-12-04 23:59:59");
    }
}
