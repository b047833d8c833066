//! `prepare-root`: turn a mounted physical root into the deployment's root.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::cmdline::KernelArgs;
use crate::config::Config;
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
}

/// Read the layout and order the candidates (no side effects).
pub fn candidates(opts: &Options) -> (Vec<(Deployment, Reason)>, Vec<String>) {
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
    (c.list, notes)
}

fn label(d: &Deployment) -> String {
    format!("{}/{}", d.stateroot, d.id())
}

/// Plan the first bootable candidate and, unless `dry_run`, execute it; on a
/// failed step, undo and try the next candidate.
pub fn run(opts: &Options, sys: &mut dyn System, dry_run: bool) -> Result<Outcome, NothingBootable> {
    let requested = select::describe_request(&opts.args);
    let (list, mut tried) = candidates(opts);
    for note in &tried {
        log::warn!("skipping {note}");
    }
    for (d, reason) in list {
        let init = match layout::check_deployment(&opts.sysroot, &d, opts.init.as_deref()) {
            Ok(init) => init,
            Err(e) => {
                log::warn!("skipping {}: {e}", label(&d));
                tried.push(format!("{}: {e}", label(&d)));
                continue;
            }
        };
        let state = BootState {
            requested: requested.clone(),
            selected: label(&d),
            index: d.index,
            reason: reason.to_string(),
            init,
            skipped: tried.clone(),
        };
        let steps = plan::prepare_root(&PrepareRoot {
            sysroot: &opts.sysroot,
            run: &opts.run,
            deployment: &d,
            config: &opts.config,
            state: state.render(),
        });
        if !dry_run && let Err(StepFailed { number, step, errno }) = sys::run_plan(sys, &steps) {
            let msg = format!(
                "{}: step {number} ({}) failed on {}: {errno}",
                label(&d),
                step.purpose,
                step.op.target().display()
            );
            log::error!("{msg}");
            tried.push(msg);
            continue;
        }
        if reason == Reason::Fallback {
            log::warn!("booting fallback deployment {} (index {})", label(&d), d.index);
        } else {
            log::info!("booting {} (index {}, {reason})", label(&d), d.index);
        }
        return Ok(Outcome { deployment: d, reason, state, plan: steps });
    }
    Err(NothingBootable { requested, tried })
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
