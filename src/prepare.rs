//! `prepare-root`: turn a mounted physical root into the deployment's root.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::cmdline::{Fallback, KernelArgs};
use crate::config::Config;
use crate::counting::{self, Change, Count, MarkerDir, Markers, apply_writable};
use crate::layout::{self, Deployment, Deployments};
use crate::plan::{self, PrepareRoot, Step};
use crate::select::{self, Reason};
use crate::state::BootState;
use crate::sys::{self, StepFailed, System};

/// Everything prepare-root takes from outside; every path is a parameter.
#[derive(Debug, Clone)]
pub struct Options {
    /// The physical root's mount point (`/sysroot`).
    pub sysroot: PathBuf,
    /// The runtime directory (`/run`).
    pub run: PathBuf,
    pub args: KernelArgs,
    pub config: Config,
    /// `init=` to check for (PID-1 mode); `None` checks the default inits.
    pub init: Option<String>,
}

/// Nothing could be laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NothingBootable {
    pub requested: String,
    /// Each candidate tried and why it failed.
    pub tried: Vec<String>,
}

impl fmt::Display for NothingBootable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no deployment could be laid out (requested: {})", self.requested)?;
        if self.tried.is_empty() {
            write!(f, "; no deployment was found in /boot/loader/entries and ostree= named none")?;
        }
        for t in &self.tried {
            write!(f, "\n  - {t}")?;
        }
        Ok(())
    }
}

/// What was laid out.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub deployment: Deployment,
    pub reason: Reason,
    pub state: BootState,
    pub plan: Vec<Step>,
    /// The boot-counting change made (or, in a dry run, to be made).
    pub counting: Option<Change>,
}

/// The candidates in order, and notes on what could not be a candidate.
pub struct Candidates {
    pub list: Vec<(Deployment, Reason)>,
    pub notes: Vec<String>,
}

/// Read the layout and order the candidates (no side effects).
pub fn candidates(opts: &Options) -> Candidates {
    let mut notes = Vec::new();
    let deployments = match layout::read_deployments(&opts.sysroot) {
        Ok(d) => d,
        Err(e) => {
            notes.push(format!("{e}"));
            Deployments::default()
        }
    };
    for p in &deployments.problems {
        log::warn!("{p}");
    }
    let from_ostree = opts.args.ostree.as_ref().map(|arg| {
        let parsed = layout::parse_ostree_arg(arg).map_err(|e| e.to_string())?;
        let (stateroot, csum, serial) =
            layout::resolve_ostree_arg(&opts.sysroot, arg).map_err(|e| e.to_string())?;
        Ok(Deployment {
            index: 0,
            stateroot,
            csum,
            serial,
            bootcsum: parsed.bootcsum,
            bootserial: parsed.bootserial,
            ostree_arg: arg.clone(),
            entry: String::new(),
            version: String::new(),
            options: String::new(),
            linux: None,
            initrd: None,
        })
    });
    let c = select::candidates(&opts.args, &deployments, from_ostree);
    notes.extend(c.skipped.into_iter().map(|(what, why)| format!("{what}: {why}")));
    Candidates { list: c.list, notes }
}

fn label(d: &Deployment) -> String {
    format!("{}/{}", d.stateroot, d.id())
}

/// The boot-counting view of this boot: the markers read once, and the
/// number of tries a new default deployment gets.
struct Counting {
    markers: Markers,
    tries: u32,
    dir: MarkerDir,
}

impl Counting {
    fn read(opts: &Options) -> Counting {
        let dir = MarkerDir::new(&opts.sysroot);
        let tries = opts.args.tries.unwrap_or(opts.config.boot_counting.tries);
        let markers = match (dir.list(), layout::deployment_dirs(&opts.sysroot)) {
            (Ok(files), Ok(known)) => {
                let known: Vec<String> = known.iter().map(|(s, id)| counting::base_name(s, id)).collect();
                counting::reduce(&files, &known)
            }
            (Err(e), _) => {
                log::error!("{e}: boot counting state ignored");
                Markers::default()
            }
            (_, Err(e)) => {
                // Without the list of deployments no marker can be judged stale.
                log::warn!("{e}: boot counting markers not checked for stale entries");
                let files = dir.list().unwrap_or_default();
                let bases: Vec<String> = files.iter().map(|f| counting::parse_marker(f).base).collect();
                counting::reduce(&files, &bases)
            }
        };
        Counting { markers, tries, dir }
    }
}

/// Plan the first bootable candidate and, unless `dry_run`, record the boot
/// attempt and execute the plan; on a failed step, undo and try the next
/// candidate. Candidates marked bad by boot counting are skipped; when every
/// bootable candidate is bad, the first of them boots anyway, with a warning.
pub fn run(opts: &Options, sys: &mut dyn System, dry_run: bool) -> Result<Outcome, NothingBootable> {
    let requested = select::describe_request(&opts.args);
    let Candidates { list, notes } = candidates(opts);
    for note in &notes {
        log::warn!("skipping {note}");
    }
    let mut tried = notes;
    let mut counting = Counting::read(opts);
    if !dry_run && !counting.markers.repairs.is_empty() {
        let repairs = std::mem::take(&mut counting.markers.repairs);
        for r in &repairs {
            log::info!("boot counting: repair: {r}");
        }
        if let Err(e) = apply_writable(&opts.sysroot, &counting.dir, &repairs) {
            log::error!("{e}");
        }
    }
    let honour_bad = opts.args.fallback == Fallback::Auto;
    let mut all_bad = Vec::new();
    for (d, reason) in list {
        let count = counting.markers.count(&base(&d));
        if honour_bad && reason != Reason::Manual && matches!(count, Count::Bad { .. }) {
            let msg = format!("{}: marked bad by boot counting ({count})", label(&d));
            log::warn!("skipping {msg}");
            tried.push(msg);
            all_bad.push((d, reason));
            continue;
        }
        if let Some(o) = attempt(opts, sys, dry_run, &counting, d, reason, &requested, &mut tried) {
            return Ok(o);
        }
    }
    // Nothing else could boot: a deployment marked bad is better than none.
    if let Some((d, reason)) = all_bad.into_iter().next() {
        log::error!("every bootable deployment is marked bad: booting {} anyway", label(&d));
        if let Some(o) = attempt(opts, sys, dry_run, &counting, d, reason, &requested, &mut tried) {
            return Ok(o);
        }
    }
    Err(NothingBootable { requested, tried })
}

fn base(d: &Deployment) -> String {
    counting::base_name(&d.stateroot, &d.id())
}

/// Try one candidate: check it, count the attempt, lay it out. `None` (with
/// the reason added to `tried`) when it cannot boot.
#[allow(clippy::too_many_arguments)]
fn attempt(
    opts: &Options,
    sys: &mut dyn System,
    dry_run: bool,
    counting: &Counting,
    d: Deployment,
    reason: Reason,
    requested: &str,
    tried: &mut Vec<String>,
) -> Option<Outcome> {
    let init = match layout::check_deployment(&opts.sysroot, &d, opts.init.as_deref()) {
        Ok(init) => init,
        Err(e) => {
            log::warn!("skipping {}: {e}", label(&d));
            tried.push(format!("{}: {e}", label(&d)));
            return None;
        }
    };
    let base = base(&d);
    // A manual choice counts no tries; only the default gets armed.
    let arm = d.index == 0 && reason == Reason::Default;
    let change = match reason {
        Reason::Manual => None,
        _ => counting.markers.attempt(&base, counting.tries, arm),
    };
    let count = match &change {
        Some(Change::Create { name } | Change::Rename { to: name, .. }) => counting::parse_marker(name).count,
        _ => counting.markers.count(&base),
    };
    let state = BootState {
        requested: requested.to_string(),
        selected: label(&d),
        index: d.index,
        reason: reason.to_string(),
        init,
        counting: count.to_string(),
        skipped: tried.clone(),
    };
    let steps = plan::prepare_root(&PrepareRoot {
        sysroot: &opts.sysroot,
        run: &opts.run,
        deployment: &d,
        config: &opts.config,
        state: state.render(),
    });
    if !dry_run {
        if let Some(c) = &change {
            log::info!("boot counting: {c}");
            // Not fatal: booting uncounted beats not booting.
            if let Err(e) = apply_writable(&opts.sysroot, &counting.dir, std::slice::from_ref(c)) {
                log::error!("{e}");
            }
        }
        if let Err(StepFailed { number, step, errno }) = sys::run_plan(sys, &steps) {
            let msg = format!(
                "{}: step {number} ({}) failed on {}: {errno}",
                label(&d),
                step.purpose,
                step.op.target().display()
            );
            log::error!("{msg}");
            tried.push(msg);
            return None;
        }
    }
    if reason == Reason::Fallback {
        log::warn!("booting fallback deployment {} (index {})", label(&d), d.index);
    } else {
        log::info!("booting {} (index {}, {reason})", label(&d), d.index);
    }
    Some(Outcome { deployment: d, reason, state, plan: steps, counting: change })
}

/// Is `path` a mount point? (Its device differs from its parent's, or it is
/// the root.) Used to refuse a sysroot that is just a directory.
pub fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata(path)?;
    let parent = std::fs::metadata(path.join(".."))?;
    Ok(me.dev() != parent.dev() || me.ino() == parent.ino() || mountinfo_has(path))
}

/// A bind mount of a directory of the same filesystem has the same device as
/// its parent, so also look it up in `/proc/self/mountinfo`.
fn mountinfo_has(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else { return false };
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    text.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}
