//! `rootstock status`: the deployments, which is default, rollback, booted.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Serialize;

use rootstock_core::counting::{self, Count, MarkerDir};
use rootstock_core::layout::{self, LayoutError};
use rootstock_core::plan::PENDING_STATE;
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

/// Gather the status. `physical_root` is where the physical root is mounted
/// (`/sysroot` in a booted system), `root` is the running root (`/`): the
/// booted deployment is the one whose directory is the same inode, as
/// libostree decides.
pub fn gather(physical_root: &Path, root: &Path, run: &Path) -> Result<Status, LayoutError> {
    let ds = layout::read_deployments(physical_root)?;
    let files = MarkerDir::new(physical_root).list().unwrap_or_default();
    let known: Vec<String> = ds.list.iter().map(|d| counting::base_name(&d.stateroot, &d.id())).collect();
    let markers = counting::reduce(&files, &known);
    let root_id = std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()));
    let deployments = ds
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
            }
        })
        .collect();
    let mut problems: Vec<String> = ds.problems.iter().map(|p| p.to_string()).collect();
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
    Ok(Status { deployments, boot, prepared, problems })
}

/// The booted deployment's marker base name, found as `gather` does.
pub fn booted_base(physical_root: &Path, root: &Path) -> Result<Option<String>, LayoutError> {
    let root_id = std::fs::metadata(root).ok().map(|m| (m.dev(), m.ino()));
    for (stateroot, id) in layout::deployment_dirs(physical_root)? {
        let dir = physical_root.join(layout::deploy_dir(&stateroot, &id));
        let this = std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()));
        if this.is_some() && this == root_id {
            return Ok(Some(counting::base_name(&stateroot, &id)));
        }
    }
    Ok(None)
}

/// The human table.
pub fn render(s: &Status) -> String {
    let mut out =
        format!("  {:<5} {:<12} {:<72} {:<8} {}\n", "INDEX", "STATEROOT", "DEPLOYMENT", "VERSION", "ROLE");
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
            r.counting.to_string(),
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
