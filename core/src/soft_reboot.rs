//! `rootstock prepare-soft-reboot`: lay a deployment out at `/run/nextroot`
//! from the running system, for `systemctl soft-reboot` (a new userspace on
//! the running kernel), or load its own kernel for `systemctl kexec` when
//! the running kernel is not its.
//!
//! The decisions are the boot's: the same checks, the same layout
//! ([`plan::soft_reboot`]), the same boot counting (the new deployment is
//! counted as a boot, so that a real reboot after an unblessed soft reboot
//! continues the fallback sequence). Every side effect goes through the
//! [`System`] seam; a failed step undoes every mount made.

use std::path::{Path, PathBuf};

use crate::cmdline::DeploymentChoice;
use crate::composefs::Root;
use crate::config::Config;
use crate::counting::{self, BootCounting, Change};
use crate::errno::Errno;
use crate::layout::{self, Deployment, LayoutError, Unbootable};
use crate::plan::{self, PENDING_STATE, PrepareRoot, Purpose, Step};
use crate::seam::{KexecImage, Op, System};
use crate::state::{BootState, Reason};

/// Everything `prepare-soft-reboot` takes from outside; every path is a
/// parameter.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the running system has the physical root (`/sysroot`).
    pub sysroot: PathBuf,
    /// The runtime directory (`/run`): kept across a soft reboot.
    pub run: PathBuf,
    /// Where systemd looks for the next root (`/run/nextroot`).
    pub nextroot: PathBuf,
    /// The boot partition's mount point (`/boot`), where a boot loader
    /// entry's kernel and initramfs are, for `--kexec`.
    pub boot: PathBuf,
    /// `None`: the default deployment.
    pub request: Option<DeploymentChoice>,
    pub config: Config,
    /// `uname -r`: the kernel a soft reboot keeps.
    pub running_kver: String,
    /// Load the deployment's own kernel for `systemctl kexec` instead.
    pub kexec: bool,
    /// `rootstock.tries=` of the running kernel's command line: as at boot,
    /// it overrides the config's `boot-counting.tries`.
    pub tries: Option<u32>,
    /// `ostree.prepare-root.composefs=` of the running kernel's command line.
    pub composefs: Option<crate::composefs::KernelArg>,
    /// The mount table (`/proc/self/mountinfo`): what is mounted at
    /// `nextroot`, and the IDs of the mounts a layout made.
    pub mountinfo: PathBuf,
    /// A rollback (`rootstock rollback`): the deployment rolled back from
    /// and why, "what: why". The next userspace's state then says
    /// `reason=fallback`, with it as the candidate passed over.
    pub rollback_from: Option<String>,
}

/// Where `prepare-soft-reboot` records the layout it made (in the run
/// directory): the new root's path and the ID and mount point of every
/// mount at it or below, so that `--reset` and the next run detach exactly
/// those and nothing else.
pub const LAYOUT_RECORD: &str = "rootstock/soft-reboot-mounts";

/// Why nothing was prepared. Each names what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("{request}: {why}")]
    NoSuchDeployment { request: String, why: String },
    #[error("{deployment}: {error}")]
    Unbootable {
        deployment: String,
        #[source]
        error: Unbootable,
    },
    #[error(
        "{deployment} has no modules for the running kernel {running} (it was built for {theirs}): \
         a soft reboot keeps the running kernel. Reboot into it, or load its kernel with \
         `rootstock prepare-soft-reboot --kexec` and run `systemctl kexec`"
    )]
    OtherKernel { deployment: String, running: String, theirs: String },
    #[error("{deployment}: its boot loader entry names no kernel that exists under {}: nothing to kexec", boot.display())]
    NoKernel { deployment: String, boot: PathBuf },
    #[error("kexec_file_load {}: {errno}: nothing was loaded", kernel.display())]
    KexecLoad { kernel: PathBuf, errno: Errno },
    #[error(
        "{deployment}: step {number} ({purpose}) failed on {}: {errno} (every mount made was undone)",
        target.display()
    )]
    StepFailed { deployment: String, number: usize, purpose: Purpose, target: PathBuf, errno: Errno },
    #[error("undoing the prepared soft reboot: {} ({what}): {errno}", path.display())]
    Reset { what: &'static str, path: PathBuf, errno: Errno },
    #[error(
        "{deployment} keeps {what} transient ({key}) and every {}.soft-reboot.N is taken: \
         remove the ones no system uses, or reboot",
        dir.display()
    )]
    TransientDirTaken { deployment: String, what: &'static str, key: &'static str, dir: PathBuf },
    #[error("--nextroot {}: {why}: nothing was changed", path.display())]
    BadNextRoot { path: PathBuf, why: String },
    #[error(
        "{} has a mount that is not the soft reboot's (mount ID {mount_id} at {}): \
         refusing to lay out over it or to detach it; nothing was changed",
        nextroot.display(), at.display()
    )]
    ForeignMount { nextroot: PathBuf, mount_id: u64, at: PathBuf },
    #[error("{}: {error}: nothing was changed", path.display())]
    Mountinfo { path: PathBuf, error: String },
    #[error("recording the layout in {}: {errno} (every mount made was undone)", path.display())]
    Record { path: PathBuf, errno: Errno },
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
}

/// What `--reset` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reset {
    /// No layout is recorded: nothing was prepared, nothing changed.
    NothingPrepared,
    /// The recorded layout was detached at this path, and its state removed.
    Detached(PathBuf),
    /// A layout is recorded but no longer mounted (the soft reboot entered
    /// it, or it was detached): only the record was removed.
    NoLongerMounted(PathBuf),
}

/// What was prepared.
#[derive(Debug, Clone)]
pub enum Prepared {
    /// Laid out at `nextroot`: `systemctl soft-reboot` enters it.
    LaidOut { deployment: Deployment, state: BootState, plan: Vec<Step>, counting: Option<Change> },
    /// Its kernel is loaded: `systemctl kexec` boots it.
    Kexec { deployment: Deployment, image: KexecImage },
}

/// Pick the deployment: the default, or the one `request` names (as
/// `rootstock.deployment=` does).
pub fn choose(sysroot: &Path, request: Option<&DeploymentChoice>) -> Result<Deployment, Error> {
    let ds = layout::read_deployments(sysroot)?;
    for p in &ds.problems {
        log::warn!("{p}");
    }
    let (found, request) = match request {
        None => (ds.list.first(), "the default deployment".to_string()),
        Some(DeploymentChoice::Index(n)) => (ds.list.get(*n), format!("deployment {n}")),
        Some(DeploymentChoice::Id(id)) => (ds.list.iter().find(|d| &d.id() == id), id.clone()),
    };
    found.cloned().ok_or_else(|| Error::NoSuchDeployment {
        request,
        why: format!(
            "not among the {} deployments of {}/boot/loader/entries",
            ds.list.len(),
            sysroot.display()
        ),
    })
}

/// `config`, raised to what the running boot was given (its
/// `/run/ostree-booted`): the configuration read now is the running
/// system's `/etc`, the deployment's own, which nothing verified. A
/// signed boot's soft reboot verifies with the keys the boot verified
/// with ([`crate::composefs::BOOTED_KEYS`]; missing, every deployment is
/// refused).
fn at_least_as_booted(opts: &Options, mut config: Config) -> Config {
    use crate::composefs::{BOOTED_KEYS, Booted};
    let Ok(bytes) =
        crate::confine::read_file(&opts.run.join("ostree-booted"), crate::confine::SMALL_FILE_CAP)
    else {
        return config;
    };
    let booted = Booted::read(&bytes);
    let floor = config.composefs.policy.at_least(booted);
    if floor != config.composefs.policy {
        log::warn!(
            "composefs.enabled = {} in the configuration, but this system booted with {floor}: \
             the soft reboot asks for {floor}",
            config.composefs.policy
        );
        config.composefs.policy = floor;
    }
    if booted.signed {
        config.composefs.key_root = opts.run.clone();
        config.composefs.keypath = Some(format!("/{BOOTED_KEYS}"));
    }
    config
}

/// The kernel versions a deployment has modules for, for the message.
fn kernels_of(sysroot: &Path, d: &Deployment) -> String {
    let root = sysroot.join(d.dir());
    let names: Vec<String> = layout::resolve_path(&root, Path::new("usr/lib/modules"))
        .ok()
        .and_then(|p| std::fs::read_dir(root.join(p)).ok())
        .map(|rd| {
            rd.flatten().take(8).map(|e| crate::text::one_line(&e.file_name().to_string_lossy())).collect()
        })
        .unwrap_or_default();
    if names.is_empty() { "no kernel".into() } else { names.join(", ") }
}

/// Prepare the soft reboot (or, with `kexec`, the kexec): undo a previous
/// preparation first (the layout it recorded, nothing else), so that
/// running it twice is safe. One at a time: the run directory is locked
/// for the whole of it, the marker directory for the counting.
pub fn prepare(opts: &Options, sys: &mut dyn System) -> Result<Prepared, Error> {
    crate::lock::with(sys, &opts.run, |sys| prepare_locked(opts, sys))
}

fn prepare_locked(opts: &Options, sys: &mut dyn System) -> Result<Prepared, Error> {
    let d = choose(&opts.sysroot, opts.request.as_ref())?;
    let who = d.label();
    if opts.kexec {
        return load_kernel(opts, sys, d);
    }
    // What is wrong with the deployment itself first: a `usr` that is a
    // symlink has no modules either, and would be refused as "another kernel".
    let init = layout::check_deployment(&opts.sysroot, &d, None)
        .map_err(|error| Error::Unbootable { deployment: who.clone(), error })?;
    if !layout::has_modules_for(&opts.sysroot, &d, &opts.running_kver) {
        return Err(Error::OtherKernel {
            theirs: kernels_of(&opts.sysroot, &d),
            deployment: who,
            running: opts.running_kver.clone(),
        });
    }
    let config = at_least_as_booted(opts, opts.config.for_boot(opts.composefs, &opts.sysroot));
    let root = crate::integrity::check(&opts.sysroot, &d, &config)
        .map_err(|error| Error::Unbootable { deployment: who.clone(), error })?;
    let hotfix = layout::hotfix(&opts.sysroot, &d)
        .map_err(|error| Error::Unbootable { deployment: who.clone(), error })?;
    let nextroot = check_nextroot(opts)?;
    reset_locked(opts, sys)?;
    // What is mounted there now is not ours: never lay out over it.
    if let Some(m) = read_mounts(&opts.mountinfo)?.into_iter().find(|m| m.point.starts_with(&nextroot)) {
        return Err(Error::ForeignMount { nextroot, mount_id: m.id, at: m.point });
    }
    if std::fs::read_dir(&nextroot).is_ok_and(|mut rd| rd.next().is_some()) {
        let why = "not empty (a soft reboot's new root starts as an empty directory)".into();
        return Err(Error::BadNextRoot { path: opts.nextroot.clone(), why });
    }
    // A transient /etc's and a transient root's upper and work directories
    // for the next userspace: the boot's are the running one's, in use.
    let fresh = |base: PathBuf, used: bool, what, key| match free_sibling(&base) {
        Some(dir) => Ok(dir),
        None if !used => Ok(base),
        None => Err(Error::TransientDirTaken { deployment: who.clone(), what, key, dir: base }),
    };
    let transient_etc =
        fresh(plan::transient_etc_dir(&opts.run), config.etc.transient, "/etc", "etc.transient")?;
    let transient_root = fresh(
        plan::transient_root_dir(&opts.run),
        config.root.transient || config.root.transient_ro,
        "/",
        "root.transient",
    )?;
    // Counting is decided now and written once the layout stands: a
    // preparation that fails costs no try. Read and written under the
    // marker directory's lock, as every command that counts.
    let markers_lock = crate::lock::markers(&opts.sysroot);
    crate::lock::acquire(sys, &markers_lock)?;
    let r = lay_out_and_count(
        opts,
        sys,
        &d,
        &nextroot,
        (init, hotfix, [transient_etc, transient_root], config, root),
    );
    crate::lock::release(sys, &markers_lock);
    r
}

/// [`prepare`]'s layout and counting, with both locks held.
fn lay_out_and_count(
    opts: &Options,
    sys: &mut dyn System,
    d: &Deployment,
    nextroot: &Path,
    (init, hotfix, [transient_etc, transient_root], config, root): (String, bool, [PathBuf; 2], Config, Root),
) -> Result<Prepared, Error> {
    let who = d.label();
    let mut counting = BootCounting::read(&opts.sysroot);
    let base = counting::base_name(&d.stateroot, &d.id());
    let tries = opts.tries.unwrap_or(config.boot_counting.tries);
    let (change, after) = counting.attempt(&base, tries, d.index == 0);
    let mut state = BootState {
        requested: match &opts.request {
            None => "prepare-soft-reboot (the default deployment)".into(),
            Some(DeploymentChoice::Index(n)) => format!("prepare-soft-reboot {n}"),
            Some(DeploymentChoice::Id(id)) => format!("prepare-soft-reboot {id}"),
        },
        selected: who.clone(),
        index: d.index,
        reason: if opts.rollback_from.is_some() { Reason::Fallback } else { Reason::SoftReboot },
        init,
        counting: after,
        skipped: opts.rollback_from.iter().cloned().collect(),
        loader_entry: None,
    };
    let layout = PrepareRoot::read(sys, &opts.sysroot, &opts.run, d, &config, root);
    let p = PrepareRoot { hotfix, state: state.render(), ..layout };
    let mut steps = plan::soft_reboot(&p, &opts.nextroot, &transient_etc, &transient_root);
    // The pending state is the last step: written after the marker.
    let pending = steps.pop();
    if let Err(plan::StepFailed { number, step, errno }) = plan::run_plan(sys, &steps) {
        return Err(Error::StepFailed {
            deployment: who,
            number,
            purpose: step.purpose,
            target: step.op.target().to_path_buf(),
            errno,
        });
    }
    // The layout is recorded before anything else: whatever fails later,
    // `--reset` finds exactly these mounts.
    let mounts = match record_layout(opts, sys, nextroot) {
        Ok(mounts) => mounts,
        Err(e) => {
            undo_layout(opts, sys);
            return Err(e);
        }
    };
    // As at boot: duplicate and stale markers go first, then the attempt.
    counting.repair(sys);
    let counted = counting.record(sys, &base, change, "this soft reboot");
    state.counting = counted.count;
    // One try per boot: a reset before the soft reboot gives it back.
    if let Some(c) = &counted.change {
        let path = opts.run.join(LAYOUT_RECORD);
        let text = render_record(nextroot, &mounts, Some(&undo_change(c)));
        if let Err(e) = sys.execute(&Op::WriteFile { path: path.clone(), contents: text.into() }) {
            log::warn!("{}: {e}: a reset will not give this soft reboot's try back", path.display());
        }
    }
    if let Some(mut last) = pending {
        if let Op::WriteFile { contents, .. } = &mut last.op {
            *contents = state.render().into();
        }
        if let Err(errno) = sys.execute(&last.op) {
            let number = steps.len() + 1;
            let target = last.op.target().to_path_buf();
            undo_layout(opts, sys);
            return Err(Error::StepFailed { deployment: who, number, purpose: last.purpose, target, errno });
        }
        steps.push(last);
    }
    Ok(Prepared::LaidOut { deployment: d.clone(), state, plan: steps, counting: counted.change })
}

/// `--nextroot` is a directory under the run directory (only plain names
/// after it, no symlink among them), not the physical root nor one of its
/// parents, not inside a deployment. Returns it as the mount table shows
/// it (the run directory's real path joined with those names).
fn check_nextroot(opts: &Options) -> Result<PathBuf, Error> {
    use std::path::Component;
    let bad = |why: String| Error::BadNextRoot { path: opts.nextroot.clone(), why };
    let under = || format!("it must be a directory under the run directory {}", opts.run.display());
    let rel = opts.nextroot.strip_prefix(&opts.run).map_err(|_| bad(under()))?;
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad(under()));
    }
    if rel.to_string_lossy().chars().any(char::is_control) {
        return Err(bad("a control character in its name".into()));
    }
    let run = std::fs::canonicalize(&opts.run)
        .map_err(|e| bad(format!("the run directory {}: {}", opts.run.display(), Errno::from_io(&e))))?;
    let mut at = run.clone();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(bad(format!("{} is a symlink", at.display())));
            }
            Ok(m) if !m.is_dir() => return Err(bad(format!("{} is not a directory", at.display()))),
            Ok(_) => {}
            Err(_) => break, // made by the plan
        }
    }
    let target = run.join(rel);
    let sysroot = std::fs::canonicalize(&opts.sysroot).unwrap_or_else(|_| opts.sysroot.clone());
    if sysroot.starts_with(&target) {
        return Err(bad(format!("it is the physical root {} or a parent of it", opts.sysroot.display())));
    }
    if target.starts_with(sysroot.join("ostree/deploy")) {
        return Err(bad("it is inside a deployment".into()));
    }
    Ok(target)
}

/// One line of the mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountEntry {
    id: u64,
    point: PathBuf,
}

/// The mounts in `mountinfo` (ID and mount point, `\040`-style escapes
/// undone), in the table's order (a parent before what is mounted on it).
fn read_mounts(mountinfo: &Path) -> Result<Vec<MountEntry>, Error> {
    let text = std::fs::read(mountinfo).map_err(|e| Error::Mountinfo {
        path: mountinfo.to_path_buf(),
        error: Errno::from_io(&e).to_string(),
    })?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let id = f.next()?.parse().ok()?;
            let point = f.nth(3)?;
            Some(MountEntry { id, point: unescape(point) })
        })
        .collect())
}

/// A mountinfo field with its octal escapes (`\040` for a space) undone.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal =
            b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal.map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0'))) {
            Some(n) if n <= 0xff => {
                out.push(n as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The record of a layout: `nextroot=PATH`, then `mount=ID PATH` for each
/// mount at it or below, the new root's first, then, once the try is
/// counted, `uncount=rename TO FROM` or `uncount=remove NAME`: what gives
/// the try back when the layout is reset unused. Paths and names as
/// mountinfo escapes them, so a line is a line.
fn render_record(nextroot: &Path, mounts: &[MountEntry], uncount: Option<&Change>) -> String {
    let esc = |b: &[u8]| {
        b.iter()
            .map(|&c| {
                if c.is_ascii_graphic() && c != b'\\' {
                    (c as char).to_string()
                } else {
                    format!("\\{c:03o}")
                }
            })
            .collect::<String>()
    };
    let path = |p: &Path| esc(p.as_os_str().as_encoded_bytes());
    let mut out = format!("nextroot={}\n", path(nextroot));
    for m in mounts {
        out.push_str(&format!("mount={} {}\n", m.id, path(&m.point)));
    }
    match uncount {
        Some(Change::Rename { from, to }) => {
            out.push_str(&format!("uncount=rename {} {}\n", esc(from.as_bytes()), esc(to.as_bytes())))
        }
        Some(Change::Remove { name }) => out.push_str(&format!("uncount=remove {}\n", esc(name.as_bytes()))),
        Some(Change::Create { .. }) | None => {}
    }
    out
}

/// A layout's record, read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Record {
    nextroot: PathBuf,
    mounts: Vec<MountEntry>,
    /// The change that gives the try back.
    uncount: Option<Change>,
}

/// [`render_record`] read back.
fn parse_record(text: &str) -> Option<Record> {
    let mut nextroot = None;
    let mut r = Record::default();
    let name = |s: &str| unescape(s).to_string_lossy().into_owned();
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("nextroot=") {
            nextroot = Some(unescape(p));
        } else if let Some(m) = line.strip_prefix("mount=") {
            let (id, point) = m.split_once(' ')?;
            r.mounts.push(MountEntry { id: id.parse().ok()?, point: unescape(point) });
        } else if let Some(u) = line.strip_prefix("uncount=") {
            let words: Vec<&str> = u.split(' ').collect();
            r.uncount = match words[..] {
                ["rename", from, to] => Some(Change::Rename { from: name(from), to: name(to) }),
                ["remove", n] => Some(Change::Remove { name: name(n) }),
                _ => None,
            };
        }
    }
    r.nextroot = nextroot?;
    Some(r)
}

/// The change that undoes `change` (a try counted for a boot that never
/// happened).
fn undo_change(change: &Change) -> Change {
    match change {
        Change::Create { name } => Change::Remove { name: name.clone() },
        Change::Rename { from, to } => Change::Rename { from: to.clone(), to: from.clone() },
        Change::Remove { name } => Change::Create { name: name.clone() },
    }
}

/// Record the mounts the layout made at `nextroot` ([`LAYOUT_RECORD`]).
fn record_layout(opts: &Options, sys: &mut dyn System, nextroot: &Path) -> Result<Vec<MountEntry>, Error> {
    let mounts: Vec<MountEntry> =
        read_mounts(&opts.mountinfo)?.into_iter().filter(|m| m.point.starts_with(nextroot)).collect();
    let path = opts.run.join(LAYOUT_RECORD);
    let op = Op::WriteFile { path: path.clone(), contents: render_record(nextroot, &mounts, None).into() };
    sys.execute(&op).map_err(|errno| Error::Record { path, errno })?;
    Ok(mounts)
}

/// The first name free of `BASE.soft-reboot.N`, beside `base` (what a
/// previous one left is never reused: it may be the running system's).
fn free_sibling(base: &Path) -> Option<PathBuf> {
    let name = base.file_name()?.to_string_lossy().into_owned();
    (0..100)
        .map(|n| base.with_file_name(format!("{name}.soft-reboot.{n}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
}

/// Load the deployment's kernel, initramfs and boot loader entry options
/// for `systemctl kexec`. Its initramfs then boots it as the boot loader
/// would have, counting included.
fn load_kernel(opts: &Options, sys: &mut dyn System, d: Deployment) -> Result<Prepared, Error> {
    let find = |p: &Option<String>| {
        p.as_ref()
            .and_then(|p| layout::resolve_path(&opts.boot, Path::new(p)).ok())
            .map(|rel| opts.boot.join(rel))
            .filter(|p| p.is_file())
    };
    let kernel =
        find(&d.linux).ok_or_else(|| Error::NoKernel { deployment: d.label(), boot: opts.boot.clone() })?;
    let image = KexecImage {
        kernel: kernel.clone(),
        initrd: find(&d.initrd),
        // The next boot's history says how it was booted (its initramfs
        // ignores the argument).
        cmdline: format!("{} rootstock.booted-by=kexec", d.options),
        carry: None,
    };
    sys.execute(&Op::KexecLoad(image.clone())).map_err(|errno| Error::KexecLoad { kernel, errno })?;
    Ok(Prepared::Kexec { deployment: d, image })
}

/// Undo a prepared soft reboot: detach the layout `prepare` recorded (the
/// new root's mount, checked by its mount ID, and with it what is below
/// it), remove the pending state, the `/var` marker written for the next
/// userspace and the record. Nothing recorded: nothing is changed. Takes
/// the run directory's lock.
pub fn reset(opts: &Options, sys: &mut dyn System) -> Result<Reset, Error> {
    crate::lock::with(sys, &opts.run, |sys| reset_locked(opts, sys))
}

fn reset_locked(opts: &Options, sys: &mut dyn System) -> Result<Reset, Error> {
    let record_path = opts.run.join(LAYOUT_RECORD);
    let text = match crate::confine::read_file(&record_path, crate::confine::SMALL_FILE_CAP) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(crate::confine::ReadError::Open { errno: Errno::NOENT, .. }) => {
            return Ok(Reset::NothingPrepared);
        }
        Err(e) => {
            return Err(Error::Reset { what: "read", path: record_path, errno: e.errno() });
        }
    };
    let Record { nextroot, mounts, uncount } = parse_record(&text).unwrap_or_default();
    let now = read_mounts(&opts.mountinfo)?;
    // The new root's own mount, still where it was made?
    let top = mounts.first().filter(|m| now.contains(m));
    let outcome = match top {
        Some(m) => {
            let op = Op::DetachMount { target: m.point.clone(), mount_id: m.id };
            match sys.execute(&op) {
                Ok(()) => Reset::Detached(nextroot),
                // Something else is mounted over it: not ours to detach.
                Err(Errno::STALE) => {
                    let over = now.iter().rev().find(|e| e.point == m.point).map_or(0, |e| e.id);
                    return Err(Error::ForeignMount { nextroot, mount_id: over, at: m.point.clone() });
                }
                Err(errno) => return Err(Error::Reset { what: "detach", path: m.point.clone(), errno }),
            }
        }
        None => Reset::NoLongerMounted(nextroot),
    };
    if let (Reset::Detached(_), Some(change)) = (&outcome, uncount) {
        give_back(opts, sys, &change)?;
    }
    let mut remove = vec![record_path];
    if matches!(outcome, Reset::Detached(_)) {
        remove.splice(0..0, [PENDING_STATE, "ostree/initramfs-mount-var"].map(|rel| opts.run.join(rel)));
    }
    for path in remove {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { continue };
        let op = Op::Unlink { dir: dir.to_path_buf(), name: name.to_string_lossy().into_owned() };
        match sys.execute(&op) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(errno) => return Err(Error::Reset { what: "remove", path, errno }),
        }
    }
    Ok(outcome)
}

/// Give back the try a detached layout counted, under the markers' lock:
/// only when the marker is still the one it left (a bless or a boot since
/// has the last word). Best effort: the layout is gone either way.
fn give_back(opts: &Options, sys: &mut dyn System, change: &Change) -> Result<(), Error> {
    let lock = crate::lock::markers(&opts.sysroot);
    crate::lock::acquire(sys, &lock)?;
    let expect = match change {
        Change::Rename { from, .. } => Some(from),
        Change::Remove { name } => Some(name),
        Change::Create { .. } => None,
    };
    let dir = counting::MarkerDir::new(&opts.sysroot);
    let present = dir.list().is_ok_and(|names| expect.is_some_and(|n| names.contains(n)));
    if present {
        let counting = BootCounting::read(&opts.sysroot);
        match counting.write(sys, change) {
            Ok(()) => log::info!("boot counting: {change}: the unused soft reboot's try is given back"),
            Err(e) => log::warn!("{e}: the unused soft reboot's try stays counted"),
        }
    } else {
        log::info!("boot counting: the marker changed since the soft reboot was prepared: left as it is");
    }
    crate::lock::release(sys, &lock);
    Ok(())
}

/// After a failure past the layout: detach it again and drop its record
/// (best effort).
fn undo_layout(opts: &Options, sys: &mut dyn System) {
    if let Err(e) = sys.execute(&Op::Detach { target: opts.nextroot.clone() }) {
        log::warn!("could not detach {} after the failure: {e}", opts.nextroot.display());
    }
    let record = opts.run.join(LAYOUT_RECORD);
    if let (Some(dir), Some(name)) = (record.parent(), record.file_name()) {
        let op = Op::Unlink { dir: dir.to_path_buf(), name: name.to_string_lossy().into_owned() };
        match sys.execute(&op) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => log::warn!("could not remove {} after the failure: {e}", record.display()),
        }
    }
}

/// The state of the running boot: `/run/rootstock/state`, or, after a soft
/// reboot, the pending state once `/` is the deployment it names (`root_id`
/// is `/`'s device and inode; `dir_id` gives a deployment directory's).
pub fn current_state(
    state: Option<BootState>,
    pending: Option<BootState>,
    root_id: Option<(u64, u64)>,
    dir_id: impl Fn(&str) -> Option<(u64, u64)>,
) -> Option<BootState> {
    match pending {
        Some(p) if root_id.is_some() && dir_id(&p.selected) == root_id => Some(p),
        _ => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counting::Count;
    use crate::seam::fake::{Call, Recorder};
    use crate::testutil::{C1, C2, TempDir, fake_physical_root};

    const KVER: &str = "6.1.0-test";

    fn opts(root: &Path, request: Option<&str>) -> Options {
        Options {
            sysroot: root.to_path_buf(),
            run: root.join("run"),
            nextroot: root.join("run/nextroot"),
            boot: root.join("boot"),
            request: request.map(|r| DeploymentChoice::parse(r).unwrap()),
            config: Config::default(),
            running_kver: KVER.into(),
            kexec: false,
            tries: Some(3),
            composefs: None,
            mountinfo: root.join("mountinfo"),
            rollback_from: None,
        }
    }

    fn physical_root() -> TempDir {
        let t = TempDir::new();
        fake_physical_root(t.path(), "r", Some(KVER));
        std::fs::create_dir_all(t.path().join("run")).unwrap();
        std::fs::write(t.path().join("mountinfo"), "").unwrap();
        t
    }

    /// What the plan wrote to the file named `name` (the first write).
    fn written(r: &Recorder, name: &str) -> crate::seam::Contents {
        r.operations()
            .find_map(|op| match op {
                Op::WriteFile { path, contents } if path.ends_with(name) => Some(contents.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("nothing written to {name}: {:?}", r.lines()))
    }

    /// Every call but taking and letting go of locks: what changed.
    fn changes(r: &Recorder) -> Vec<String> {
        r.lines().into_iter().filter(|l| !l.starts_with("lock ") && !l.starts_with("unlock ")).collect()
    }

    /// Every operation, with the temporary root shown as `R`.
    fn ops(r: &Recorder, root: &Path) -> Vec<String> {
        r.operations().map(|op| op.to_string().replace(&root.display().to_string(), "R")).collect()
    }

    #[test]
    fn the_default_is_laid_out_at_nextroot_counted_and_recorded_as_pending() {
        let t = physical_root();
        let root = t.path();
        let mut r = Recorder::new();
        let Prepared::LaidOut { deployment, state, counting, .. } =
            prepare(&opts(root, None), &mut r).unwrap()
        else {
            panic!("laid out expected")
        };
        assert_eq!(deployment.id(), format!("{C2}.0"));
        assert_eq!(state.reason, Reason::SoftReboot);
        assert_eq!(state.counting, Count::Indeterminate { left: 2, done: 1 });
        assert!(counting.is_some());
        let d = format!("R/ostree/deploy/os/deploy/{C2}.0");
        let got = ops(&r, root);
        let want_prefix = [
            // One at a time: the run directory, then the markers. Nothing
            // was recorded before, so nothing is undone.
            "lock   - -> R/run [LOCK_EX, wait 30 s]".to_string(),
            "lock   - -> R/ostree [LOCK_EX, wait 30 s]".into(),
            "mkdir  - -> R/run/nextroot [0755]".into(),
            format!("mount  {d} -> R/run/nextroot [MS_BIND]"),
            "mount  none -> R/run/nextroot [MS_REC|MS_PRIVATE]".into(),
            "mount  R/run/nextroot/usr -> R/run/nextroot/usr [MS_BIND]".into(),
            "mount  none -> R/run/nextroot/usr [MS_REMOUNT|MS_BIND|MS_RDONLY]".into(),
            "mount  R/run/nextroot/etc -> R/run/nextroot/etc [MS_BIND]".into(),
            "mount  R/ostree/deploy/os/var -> R/run/nextroot/var [MS_BIND]".into(),
            "mount  R -> R/run/nextroot/sysroot [MS_BIND]".into(),
            "mount  none -> R/run/nextroot [MS_REC|MS_PRIVATE]".into(),
        ];
        assert_eq!(&got[..want_prefix.len()], &want_prefix, "{got:#?}");
        let rest = &got[want_prefix.len()..got.len() - 2];
        assert_eq!(&got[got.len() - 2..], ["unlock - -> R/ostree [LOCK_UN]", "unlock - -> R/run [LOCK_UN]"]);
        assert!(rest[0].ends_with("-> R/run/ostree-booted [atomic]"), "{rest:#?}");
        assert_eq!(rest[1], "mkdir  - -> R/run/ostree [0755]", "{rest:#?}");
        assert!(rest[2].ends_with("-> R/run/ostree/initramfs-mount-var [atomic]"), "{rest:#?}");
        assert_eq!(rest[3], "mkdir  - -> R/run/rootstock [0755]", "{rest:#?}");
        // The layout is recorded first, then the try is counted, then the
        // pending state.
        assert!(rest[4].ends_with("-> R/run/rootstock/soft-reboot-mounts [atomic]"), "{rest:#?}");
        let marker = rest.iter().position(|l| l.contains("ostree/rootstock")).expect("a marker written");
        let pending =
            rest.iter().position(|l| l.ends_with("-> R/run/rootstock/soft-reboot [atomic]")).unwrap();
        assert!(4 < marker && marker < pending && pending == rest.len() - 1, "{rest:#?}");
        // ostree tells the booted deployment by `/`: no backing inode.
        let booted = written(&r, "ostree-booted");
        assert!(!String::from_utf8_lossy(booted.as_bytes()).contains("backing-root-device-inode"));
        // The pending state says what was counted.
        let text = written(&r, "soft-reboot").text();
        let parsed = BootState::parse(&text).unwrap();
        assert_eq!(parsed, state);
        assert_eq!(parsed.selected, format!("os/{C2}.0"));
    }

    #[test]
    fn a_composefs_boot_is_not_soft_rebooted_into_less_whatever_etc_says() {
        use crate::gvariant::{Value, vardict};
        let t = physical_root();
        let root = t.path();
        // The running boot was verified; the configuration in /etc (the
        // deployment's own, unverified) asks for nothing.
        let booted = |entries: &[(&str, Value)]| {
            std::fs::write(root.join("run/ostree-booted"), vardict(entries)).unwrap()
        };
        booted(&[("composefs", Value::Bool(true)), ("composefs.verity", Value::Bool(true))]);
        let mut r = Recorder::new();
        let e = prepare(&opts(root, None), &mut r).unwrap_err().to_string();
        assert!(e.contains("composefs.enabled = verity: the deployment has no composefs image"), "{e}");
        assert_eq!(changes(&r), Vec::<String>::new());
        // Signed: the keys are the boot's, kept in /run, not /etc's.
        booted(&[("composefs", Value::Bool(true)), ("composefs.signed", Value::Str("/etc/ostree/k"))]);
        let image = root.join(format!("ostree/deploy/os/deploy/{C2}.0/.ostree.cfs"));
        std::fs::write(&image, "").unwrap();
        let e = prepare(&opts(root, None), &mut r).unwrap_err().to_string();
        let keys = root.join("run/rootstock/composefs-keys");
        assert!(
            e.contains(&format!("composefs.enabled = signed: the signing key {}", keys.display())),
            "{e}"
        );
    }

    #[test]
    fn the_rollback_by_name_is_laid_out_but_not_armed() {
        let t = physical_root();
        let root = t.path();
        let mut r = Recorder::new();
        let Prepared::LaidOut { deployment, state, counting, .. } =
            prepare(&opts(root, Some("rollback")), &mut r).unwrap()
        else {
            panic!("laid out expected")
        };
        assert_eq!(deployment.id(), format!("{C1}.0"));
        assert_eq!(state.requested, "prepare-soft-reboot 1");
        assert_eq!((counting, state.counting), (None, Count::Never));
        let id = format!("{C1}.0");
        let mut r = Recorder::new();
        let Prepared::LaidOut { deployment, .. } = prepare(&opts(root, Some(&id)), &mut r).unwrap() else {
            panic!()
        };
        assert_eq!(deployment.id(), id);
    }

    #[test]
    fn a_deployment_for_another_kernel_is_refused_and_nothing_changes() {
        let t = physical_root();
        let root = t.path();
        let mut o = opts(root, None);
        o.running_kver = "6.12.0-other".into();
        let mut r = Recorder::new();
        let e = prepare(&o, &mut r).unwrap_err();
        assert!(matches!(e, Error::OtherKernel { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("6.12.0-other") && msg.contains(KVER) && msg.contains("--kexec"), "{msg}");
        assert_eq!(changes(&r), Vec::<String>::new());
    }

    #[test]
    fn a_symlinked_usr_is_named_as_such_not_as_another_kernel() {
        let t = physical_root();
        let root = t.path();
        let usr = root.join(format!("ostree/deploy/os/deploy/{C2}.0/usr"));
        std::fs::rename(&usr, usr.with_extension("real")).unwrap();
        std::os::unix::fs::symlink("/", &usr).unwrap();
        let mut r = Recorder::new();
        let e = prepare(&opts(root, None), &mut r).unwrap_err();
        assert!(matches!(e, Error::Unbootable { error: Unbootable::Symlink { .. }, .. }), "{e}");
        assert_eq!(changes(&r), Vec::<String>::new());
    }

    #[test]
    fn kexec_loads_the_deployments_own_kernel_and_lays_out_nothing() {
        let t = physical_root();
        let root = t.path();
        std::fs::create_dir_all(root.join(format!("boot/ostree/os-{C2}"))).unwrap();
        std::fs::write(root.join(format!("boot/ostree/os-{C2}/vmlinuz")), "k").unwrap();
        std::fs::write(root.join(format!("boot/ostree/os-{C2}/initramfs.img")), "i").unwrap();
        let mut o = opts(root, None);
        o.running_kver = "6.12.0-other".into();
        o.kexec = true;
        let mut r = Recorder::new();
        let Prepared::Kexec { image, .. } = prepare(&o, &mut r).unwrap() else { panic!("kexec expected") };
        assert_eq!(image.kernel, root.join(format!("boot/ostree/os-{C2}/vmlinuz")));
        assert_eq!(image.initrd, Some(root.join(format!("boot/ostree/os-{C2}/initramfs.img"))));
        assert_eq!(
            image.cmdline,
            format!("root=LABEL=r rw ostree=/ostree/boot.1/os/{C2}/0 rootstock.booted-by=kexec"),
            "the entry's options, and how the next boot was made (for the boot history)"
        );
        assert_eq!(r.kexec_images(), vec![image]);
        assert_eq!(changes(&r).len(), 1, "{:?}", r.lines());
        // Without a kernel file: a clear error, nothing loaded.
        std::fs::remove_file(root.join(format!("boot/ostree/os-{C2}/vmlinuz"))).unwrap();
        let mut r = Recorder::new();
        assert!(matches!(prepare(&o, &mut r), Err(Error::NoKernel { .. })));
        assert!(r.kexec_images().is_empty());
    }

    #[test]
    fn a_failed_step_detaches_everything_and_counts_nothing() {
        let t = physical_root();
        let root = t.path();
        let var = root.join("run/nextroot/var");
        let mut r = Recorder::failing_on(
            move |c| matches!(c, Call::Op(Op::Bind { target, .. }) if *target == var),
            Errno::NOMEM,
        );
        let e = prepare(&opts(root, None), &mut r).unwrap_err();
        let Error::StepFailed { purpose, errno, .. } = &e else { panic!("{e}") };
        assert_eq!((*purpose, *errno), (Purpose::BindVar, Errno::NOMEM));
        assert!(e.to_string().contains("bind the stateroot's /var"), "{e}");
        let got = changes(&r);
        let tail: Vec<String> =
            got.iter().rev().take(3).rev().map(|l| l.replace(&root.display().to_string(), "R")).collect();
        assert_eq!(
            tail,
            [
                "umount - -> R/run/nextroot/etc [MNT_DETACH]",
                "umount - -> R/run/nextroot/usr [MNT_DETACH]",
                "umount - -> R/run/nextroot [MNT_DETACH]"
            ],
            "{got:#?}"
        );
        assert!(
            !got.iter().any(|l| l.contains("ostree/rootstock") || l.starts_with("write")),
            "nothing counted or written: {got:#?}"
        );
    }

    /// A mount table line for `id` at `point`.
    fn mount_line(id: u64, point: &Path) -> String {
        format!("{id} 1 0:1 / {} rw - tmpfs tmpfs rw\n", point.display())
    }

    #[test]
    fn reset_with_nothing_recorded_says_so_and_changes_nothing() {
        let t = physical_root();
        let o = opts(t.path(), None);
        // Something is mounted at the next root, but not by us: untouched.
        std::fs::write(&o.mountinfo, mount_line(77, &o.nextroot)).unwrap();
        let mut r = Recorder::new();
        assert_eq!(reset(&o, &mut r), Ok(Reset::NothingPrepared));
        let run = t.path().join("run").display().to_string();
        assert_eq!(
            r.lines(),
            [format!("lock   - -> {run} [LOCK_EX, wait 30 s]"), format!("unlock - -> {run} [LOCK_UN]")]
        );
    }

    #[test]
    fn reset_detaches_the_recorded_root_by_its_mount_id_only() {
        let t = physical_root();
        let o = opts(t.path(), None);
        let run = t.path().join("run");
        std::fs::create_dir_all(run.join("rootstock")).unwrap();
        let usr = o.nextroot.join("usr");
        let mounts =
            [MountEntry { id: 40, point: o.nextroot.clone() }, MountEntry { id: 41, point: usr.clone() }];
        std::fs::write(run.join(LAYOUT_RECORD), render_record(&o.nextroot, &mounts, None)).unwrap();
        std::fs::write(&o.mountinfo, mount_line(40, &o.nextroot) + &mount_line(41, &usr)).unwrap();
        let mut r = Recorder::new();
        assert_eq!(reset(&o, &mut r), Ok(Reset::Detached(o.nextroot.clone())));
        let got = ops(&r, t.path());
        assert_eq!(
            got,
            [
                "lock   - -> R/run [LOCK_EX, wait 30 s]",
                "umount - -> R/run/nextroot [MNT_DETACH mount ID 40]",
                "unlink - -> R/run/rootstock/soft-reboot [file]",
                "unlink - -> R/run/ostree/initramfs-mount-var [file]",
                "unlink - -> R/run/rootstock/soft-reboot-mounts [file]",
                "unlock - -> R/run [LOCK_UN]",
            ]
        );
        // Mounted over since (ESTALE from the kernel's check): refused.
        let mut r = Recorder::failing_on(|c| matches!(c, Call::Op(Op::DetachMount { .. })), Errno::STALE);
        let e = reset(&o, &mut r).unwrap_err();
        assert!(matches!(e, Error::ForeignMount { .. }), "{e}");
        assert!(!r.lines().iter().any(|l| l.starts_with("unlink")), "{:?}", r.lines());
        // No longer mounted (the soft reboot entered it): only the record goes.
        std::fs::write(&o.mountinfo, mount_line(40, Path::new("/"))).unwrap();
        let mut r = Recorder::new();
        assert_eq!(reset(&o, &mut r), Ok(Reset::NoLongerMounted(o.nextroot.clone())));
        let got = ops(&r, t.path());
        assert_eq!(got[1], "unlink - -> R/run/rootstock/soft-reboot-mounts [file]", "{got:#?}");
        assert_eq!(got.len(), 3, "{got:#?}");
    }

    #[test]
    fn a_next_root_that_is_not_an_empty_directory_of_its_own_under_run_is_refused() {
        let t = physical_root();
        let root = t.path();
        let refused = |o: &Options| {
            let mut r = Recorder::new();
            let e = prepare(o, &mut r).unwrap_err();
            let changed: Vec<String> = r
                .lines()
                .into_iter()
                .filter(|l| !l.starts_with("lock") && !l.starts_with("unlock"))
                .collect();
            assert!(changed.is_empty(), "{e}: {changed:#?}");
            e
        };
        for (nextroot, why) in [
            (root.to_path_buf(), "under the run directory"),
            (root.join("run"), "under the run directory"),
            (root.join("run/../ostree"), "under the run directory"),
            (root.join(format!("ostree/deploy/os/deploy/{C2}.0/run")), "under the run directory"),
        ] {
            let e = refused(&Options { nextroot, ..opts(root, None) });
            assert!(matches!(e, Error::BadNextRoot { .. }) && e.to_string().contains(why), "{e}");
        }
        // The run directory inside a deployment, or the physical root inside the run directory.
        let deploy = root.join(format!("ostree/deploy/os/deploy/{C2}.0"));
        let o = Options { run: deploy.clone(), nextroot: deploy.join("etc"), ..opts(root, None) };
        assert!(refused(&o).to_string().contains("inside a deployment"));
        let o = Options {
            run: root.parent().unwrap().to_path_buf(),
            nextroot: root.to_path_buf(),
            ..opts(root, None)
        };
        assert!(refused(&o).to_string().contains("the physical root"));
        // A symlink, a file, a directory with something in it.
        std::os::unix::fs::symlink("/", root.join("run/link")).unwrap();
        let e = refused(&Options { nextroot: root.join("run/link"), ..opts(root, None) });
        assert!(e.to_string().contains("symlink"), "{e}");
        std::fs::create_dir_all(root.join("run/nextroot/x")).unwrap();
        let e = refused(&opts(root, None));
        assert!(e.to_string().contains("not empty"), "{e}");
        // Something else mounted there: named, left alone.
        std::fs::remove_dir(root.join("run/nextroot/x")).unwrap();
        let o = opts(root, None);
        std::fs::write(&o.mountinfo, mount_line(77, &root.join("run/nextroot/var"))).unwrap();
        let e = refused(&o);
        assert!(matches!(e, Error::ForeignMount { mount_id: 77, .. }), "{e}");
    }

    #[test]
    fn the_layout_is_recorded_with_the_mounts_the_table_shows() {
        let t = physical_root();
        let o = opts(t.path(), None);
        // The recorder makes no mounts: the table as it would be after them.
        let usr = o.nextroot.join("usr");
        std::fs::write(&o.mountinfo, mount_line(50, &o.nextroot) + &mount_line(51, &usr)).unwrap();
        // ...but the check before the layout must see none: fail it, then
        // look at what a successful record writes.
        let mut r = Recorder::new();
        let e = prepare(&o, &mut r).unwrap_err();
        assert!(matches!(e, Error::ForeignMount { mount_id: 50, .. }), "{e}");
        let mut r = Recorder::new();
        record_layout(&o, &mut r, &o.nextroot).unwrap();
        let text = written(&r, "soft-reboot-mounts").text();
        let rec = parse_record(&text).unwrap();
        assert_eq!(rec.nextroot, o.nextroot);
        assert_eq!(rec.mounts.iter().map(|m| m.id).collect::<Vec<_>>(), [50, 51]);
        // A name with a space or a newline stays one line and reads back.
        let odd = o.nextroot.join("a b\nc");
        let give_back = Change::Rename { from: "os-x.0+03-02".into(), to: "os-x.0+04-01".into() };
        let text = render_record(&odd, &[MountEntry { id: 1, point: odd.clone() }], Some(&give_back));
        assert_eq!(text.lines().count(), 3, "{text}");
        let want = Record {
            nextroot: odd.clone(),
            mounts: vec![MountEntry { id: 1, point: odd }],
            uncount: Some(give_back),
        };
        assert_eq!(parse_record(&text).unwrap(), want);
    }

    #[test]
    fn a_transient_etc_gets_an_upper_directory_of_its_own() {
        let t = physical_root();
        let root = t.path();
        let mut o = opts(root, None);
        o.config.etc.transient = true;
        // The running system's, in use (and a leftover of an earlier try).
        std::fs::create_dir_all(root.join("run/ostree/transient-etc")).unwrap();
        std::fs::create_dir_all(root.join("run/ostree/transient-etc.soft-reboot.0")).unwrap();
        let mut r = Recorder::new();
        prepare(&o, &mut r).unwrap();
        let mine = root.join("run/ostree/transient-etc.soft-reboot.1");
        let overlay = r
            .operations()
            .find_map(|op| match op {
                Op::Overlay { target, lower, upper, work } => Some((target, lower, upper, work)),
                _ => None,
            })
            .expect("an /etc overlay");
        assert_eq!(overlay.0, &root.join("run/nextroot/etc"));
        assert_eq!(overlay.1, &root.join("run/nextroot/usr/etc"));
        assert_eq!((overlay.2, overlay.3), (&mine.join("upper"), &mine.join("work")));
        let booted = written(&r, "ostree-booted");
        let text = String::from_utf8_lossy(booted.as_bytes()).into_owned();
        assert!(text.contains("transient-etc.soft-reboot.1"), "ostree-remount is told where: {text:?}");
    }

    #[test]
    fn the_pending_state_counts_only_once_root_is_its_deployment() {
        let state = |sel: &str| BootState { selected: sel.into(), ..BootState::default() };
        let dirs = |sel: &str| (sel == "os/new").then_some((1, 2));
        let old = Some(state("os/old"));
        let pending = Some(state("os/new"));
        assert_eq!(current_state(old.clone(), pending.clone(), Some((1, 2)), dirs), pending);
        assert_eq!(current_state(old.clone(), pending.clone(), Some((1, 3)), dirs), old);
        assert_eq!(current_state(old.clone(), None, Some((1, 2)), dirs), old);
        assert_eq!(current_state(old.clone(), pending, None, dirs), old);
    }
}
