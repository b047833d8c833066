//! The mount plan: the steps that lay out a deployment, as data.
//!
//! A plan is computed in memory from the layout and the config, printed by
//! `--dry-run`, and executed step by step through the [`crate::seam`].

use std::fmt;
use std::path::{Path, PathBuf};

use crate::composefs::{Composefs, IMAGE, Root};
use crate::config::Config;
use crate::errno::Errno;
use crate::gvariant;
use crate::layout::{Deployment, HOTFIX_UPPER, HOTFIX_WORK};
pub use crate::seam::Op;
use crate::seam::System;

/// What a step is for; names the step in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    MakeRootPrivate,
    CreateStaging,
    BindDeployment,
    CreateComposefsDirs,
    MountComposefsImage,
    MountComposefs,
    DetachComposefsImage,
    BindUsr,
    RemountUsrReadOnly,
    RemountRootWritable,
    OverlayHotfixUsr,
    BindEtc,
    RemountEtcWritable,
    CreateTransientEtc,
    OverlayTransientEtc,
    BindVar,
    RemountVarWritable,
    BindBoot,
    BindPhysicalRoot,
    RemountSysrootReadOnly,
    MoveToSysroot,
    CreateNextRoot,
    MakeNextRootPrivate,
    WriteOstreeBooted,
    WriteRunMarker,
    WriteSysrootReadOnlyStamp,
    WriteVolatileRoot,
    MaskBlessBoot,
    WriteBootedKeys,
    WriteState,
    WritePendingState,
    RemoveStaging,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::MakeRootPrivate => "make / recursively private",
            Purpose::CreateStaging => "create the staging directory",
            Purpose::BindDeployment => "bind the deployment",
            Purpose::CreateComposefsDirs => "create the composefs directories",
            Purpose::MountComposefsImage => "mount the deployment's composefs image",
            Purpose::MountComposefs => "mount the composefs root",
            Purpose::DetachComposefsImage => "detach the composefs image's own mount",
            Purpose::BindUsr => "bind /usr",
            Purpose::RemountUsrReadOnly => "remount /usr read-only",
            Purpose::RemountRootWritable => "remount the physical root read-write for the hotfix overlay",
            Purpose::OverlayHotfixUsr => "mount the hotfix overlay on /usr",
            Purpose::BindEtc => "bind /etc",
            Purpose::RemountEtcWritable => "make the /etc bind writable",
            Purpose::CreateTransientEtc => "create the transient /etc directories",
            Purpose::OverlayTransientEtc => "mount the transient /etc overlay",
            Purpose::BindVar => "bind the stateroot's /var",
            Purpose::RemountVarWritable => "make the /var bind writable",
            Purpose::BindBoot => "bind the physical root's /boot",
            Purpose::BindPhysicalRoot => "bind the physical root at /sysroot",
            Purpose::RemountSysrootReadOnly => "remount /sysroot read-only",
            Purpose::MoveToSysroot => "move the new root onto the sysroot",
            Purpose::CreateNextRoot => "create the soft reboot's new root directory",
            Purpose::MakeNextRootPrivate => "make the new root's mounts private",
            Purpose::WriteOstreeBooted => "write /run/ostree-booted",
            Purpose::WriteRunMarker => "write a marker in /run/ostree",
            Purpose::WriteSysrootReadOnlyStamp => "write /run/ostree-sysroot-ro.stamp",
            Purpose::WriteVolatileRoot => "link /run/systemd/volatile-root to the physical root's device",
            Purpose::MaskBlessBoot => {
                "mask systemd-bless-boot for this boot: the entry the boot loader counts is not the one booted"
            }
            Purpose::WriteBootedKeys => "keep the signing keys in /run for a soft reboot",
            Purpose::WriteState => "write /run/rootstock/state",
            Purpose::WritePendingState => "write /run/rootstock/soft-reboot",
            Purpose::RemoveStaging => "remove the staging directory",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub purpose: Purpose,
    pub op: Op,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  # {}", self.op, self.purpose)
    }
}

/// Mask systemd-bless-boot for the rest of this boot, soft reboots
/// included: `RUN/systemd/system/systemd-bless-boot.service` → `/dev/null`,
/// what `systemctl mask --runtime` writes. The plan uses it when rootstock
/// boots away from the entry the boot loader counts; `rootstock rollback`
/// when it marks that entry bad (systemd-bless-boot's `good` would rename a
/// bad name back).
pub fn mask_bless_boot(run: &Path) -> [Op; 2] {
    let units = run.join("systemd/system");
    [
        Op::Mkdir { path: units.clone() },
        Op::Symlink { path: units.join("systemd-bless-boot.service"), target: "/dev/null".into() },
    ]
}

/// Everything `prepare-root` needs to know to plan.
#[derive(Debug, Clone)]
pub struct PrepareRoot<'a> {
    /// Where the physical root is mounted, and where the deployment ends up.
    pub sysroot: &'a Path,
    /// The runtime directory (`/run`).
    pub run: &'a Path,
    pub deployment: &'a Deployment,
    pub config: &'a Config,
    /// The physical root's `/boot` is on the same filesystem (its `loader`
    /// is a symlink) and the deployment has a `boot/` directory: bind it
    /// there, as ostree-prepare-root does. The booted OS's ostree (`admin
    /// status`, deploy) reads the boot loader entries from `/boot`.
    pub bind_boot: bool,
    /// The deployment is unlocked with `ostree admin unlock --hotfix`
    /// ([`crate::layout::hotfix`]): /usr is an overlay that keeps the hotfixes.
    pub hotfix: bool,
    /// The physical root is mounted read-only (`ro`): binds of it are
    /// read-only too, and overlayfs refuses a read-only upper directory.
    pub physical_root_read_only: bool,
    /// The (device, inode) of the deployment's directory, which ostree ≥
    /// 2023 records in /run/ostree-booted (`backing-root-device-inode`).
    pub backing: Option<(u64, u64)>,
    /// Contents of `/run/rootstock/state`.
    pub state: String,
    /// The deployment's directory bound, or its composefs image
    /// ([`crate::integrity::check`] decides).
    pub root: Root,
    /// The (major, minor) of the device holding the physical root; `None`
    /// where it has none of its own (btrfs, tmpfs: major 0).
    pub root_device: Option<(u32, u32)>,
    /// The boot loader counts this boot against an entry of another
    /// deployment (rootstock fell back from it): mask systemd-bless-boot
    /// for this boot (in `/run`, as `systemctl mask --runtime`), so that the
    /// fallback's good boot does not bless the entry that failed.
    pub mask_bless_boot: bool,
}

impl<'a> PrepareRoot<'a> {
    /// What the plan needs to know about the disk and the mount table, for
    /// `deployment` on the physical root mounted at `sysroot`: whether its
    /// `/boot` is bound, whether the physical root is mounted read-only
    /// (asked through `sys`; when it cannot be told, taken as writable: the
    /// plan then makes no remounts), the deployment directory's identity.
    /// `root` is what [`crate::integrity::check`] allowed (never defaulted:
    /// a plain tree is laid out only where it said so). No hotfix and no
    /// state: the caller adds them.
    pub fn read(
        sys: &mut dyn System,
        sysroot: &'a Path,
        run: &'a Path,
        deployment: &'a Deployment,
        config: &'a Config,
        root: Root,
    ) -> PrepareRoot<'a> {
        use std::os::unix::fs::MetadataExt;
        let read_only = sys.query(&crate::seam::Query::ReadOnly { path: sysroot.to_path_buf() });
        PrepareRoot {
            sysroot,
            run,
            deployment,
            config,
            bind_boot: crate::layout::boot_on_physical_root(sysroot, deployment),
            hotfix: false,
            physical_root_read_only: read_only.unwrap_or_else(|e| {
                log::warn!("cannot tell whether {} is read-only: {e}", sysroot.display());
                false
            }),
            backing: std::fs::metadata(sysroot.join(deployment.dir())).ok().map(|m| (m.dev(), m.ino())),
            state: String::new(),
            root,
            root_device: std::fs::metadata(sysroot)
                .ok()
                .map(|m| (rustix::fs::major(m.dev()), rustix::fs::minor(m.dev())))
                .filter(|(major, _)| *major != 0),
            mask_bless_boot: false,
        }
    }
}

/// The staging directory where the new root is assembled: `SYSROOT.tmp`, a
/// sibling of the sysroot (ostree-prepare-root uses `/sysroot.tmp`).
pub fn staging_dir(sysroot: &Path) -> PathBuf {
    let mut s = sysroot.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// The steps that turn a mounted physical root at `sysroot` into the
/// deployment's root, with the physical root at `sysroot/sysroot`.
pub fn prepare_root(p: &PrepareRoot) -> Vec<Step> {
    let tmp = staging_dir(p.sysroot);
    let step = |purpose, op| Step { purpose, op };
    let mut steps = vec![
        // MS_MOVE refuses to move a mount whose parent is shared.
        step(Purpose::MakeRootPrivate, Op::MakeRprivate { target: PathBuf::from("/") }),
        step(Purpose::CreateStaging, Op::Mkdir { path: tmp.clone() }),
    ];
    mount_root(p, &tmp, &transient_root_dir(p.run), &mut steps);
    lay_out(p, &tmp, &transient_etc_dir(p.run), &mut steps);
    steps.push(step(
        Purpose::MoveToSysroot,
        Op::Move { source: tmp.clone(), target: p.sysroot.to_path_buf() },
    ));
    write_run_files(
        p,
        ostree_booted(p, &transient_etc_dir(p.run)),
        (Purpose::WriteState, "rootstock/state"),
        &mut steps,
    );
    // Leave the initramfs as ostree-prepare-root does: the staging
    // directory, empty since the move, goes.
    if let (Some(parent), Some(name)) = (tmp.parent(), tmp.file_name()) {
        steps.push(step(
            Purpose::RemoveStaging,
            Op::RemoveDir { dir: parent.to_path_buf(), name: name.to_string_lossy().into_owned() },
        ));
    }
    steps
}

/// Where `rootstock prepare-soft-reboot` records the state of the boot it
/// prepares (`/run/rootstock/state`'s format, reason `soft-reboot`): the
/// running system's own state stays until the soft reboot happens, and
/// `rootstock status` takes this one once `/` is its deployment.
pub const PENDING_STATE: &str = "rootstock/soft-reboot";

/// The steps that lay out a deployment at `nextroot` from the running
/// system, for `systemctl soft-reboot`: the same layout as at boot, made in
/// place (no staging, no move: systemd switches into `nextroot` itself).
/// The new root is made private first, so that the mounts below it neither
/// propagate into the running system's `/sysroot` (whose peer it would
/// be) nor go when systemd stops those. `p.state` goes to
/// [`PENDING_STATE`]; `/run/ostree-booted` is rewritten without the
/// backing inode, so that ostree tells the booted deployment by `/` both
/// before the soft reboot and after it. A transient /etc and a transient
/// root keep their upper and work directories in `transient_etc` and
/// `transient_root`, not the running system's.
pub fn soft_reboot(
    p: &PrepareRoot,
    nextroot: &Path,
    transient_etc: &Path,
    transient_root: &Path,
) -> Vec<Step> {
    let step = |purpose, op| Step { purpose, op };
    let mut steps = vec![step(Purpose::CreateNextRoot, Op::Mkdir { path: nextroot.to_path_buf() })];
    mount_root(p, nextroot, transient_root, &mut steps);
    steps.push(step(Purpose::MakeNextRootPrivate, Op::MakeRprivate { target: nextroot.to_path_buf() }));
    lay_out(p, nextroot, transient_etc, &mut steps);
    // The binds of the stateroot's /var, /boot and the physical root were
    // cloned from the running /sysroot, shared: cut them off too.
    steps.push(step(Purpose::MakeNextRootPrivate, Op::MakeRprivate { target: nextroot.to_path_buf() }));
    let unbacked = PrepareRoot { backing: None, ..p.clone() };
    let booted = ostree_booted(&unbacked, transient_etc);
    write_run_files(p, booted, (Purpose::WritePendingState, PENDING_STATE), &mut steps);
    steps
}

/// What the booted system reads in `/run`, written after the layout:
/// `ostree-booted`, the marker that `/var` is mounted, the read-only stamp
/// with `sysroot.readonly`, and `p.state` at `state` (a path in `/run`,
/// with the purpose that names its step).
fn write_run_files(p: &PrepareRoot, ostree_booted: Vec<u8>, state: (Purpose, &str), steps: &mut Vec<Step>) {
    let step = |purpose, op| Step { purpose, op };
    steps.push(step(
        Purpose::WriteOstreeBooted,
        Op::WriteFile { path: p.run.join("ostree-booted"), contents: ostree_booted.into() },
    ));
    // ostree >= 2024.2's generator mounts /var itself unless this marker says
    // the initramfs did; without it /var would be mounted twice. Its
    // directory is made through the seam, as every directory is, so the
    // plan shows it.
    steps.push(step(Purpose::WriteRunMarker, Op::Mkdir { path: p.run.join("ostree") }));
    steps.push(step(
        Purpose::WriteRunMarker,
        Op::WriteFile { path: p.run.join("ostree/initramfs-mount-var"), contents: Default::default() },
    ));
    // ostree 2022.7's ostree-remount keeps /sysroot read-only after switch
    // root only when this stamp says so (and removes it).
    if p.config.sysroot.readonly {
        steps.push(step(
            Purpose::WriteSysrootReadOnlyStamp,
            Op::WriteFile { path: p.run.join("ostree-sysroot-ro.stamp"), contents: Default::default() },
        ));
    }
    // As ostree ≥ 2026.3: under composefs / is an overlay with an anonymous
    // device, so systemd (gpt-auto, repart, growfs) finds the disk through
    // this link, in the /dev/block/MAJ:MIN form it expects.
    if let (Root::Composefs(_), Some((major, minor))) = (&p.root, p.root_device) {
        let link = p.run.join("systemd/volatile-root");
        let target = PathBuf::from(format!("/dev/block/{major}:{minor}"));
        steps.push(step(Purpose::WriteVolatileRoot, Op::Mkdir { path: p.run.join("systemd") }));
        steps.push(step(Purpose::WriteVolatileRoot, Op::Symlink { path: link, target }));
    }
    if p.mask_bless_boot {
        steps.extend(mask_bless_boot(p.run).into_iter().map(|op| step(Purpose::MaskBlessBoot, op)));
    }
    // The keys a signed root was verified with, for a soft reboot (which
    // must not take them from the deployment's unverified /etc).
    if let Root::Composefs(Composefs { keys_text: Some(keys), .. }) = &p.root {
        let path = p.run.join(crate::composefs::BOOTED_KEYS);
        if let Some(dir) = path.parent() {
            steps.push(step(Purpose::WriteBootedKeys, Op::Mkdir { path: dir.to_path_buf() }));
        }
        steps.push(step(Purpose::WriteBootedKeys, Op::WriteFile { path, contents: keys.clone().into() }));
    }
    let (purpose, rel) = state;
    if let Some(dir) = p.run.join(rel).parent() {
        steps.push(step(purpose, Op::Mkdir { path: dir.to_path_buf() }));
    }
    steps.push(step(purpose, Op::WriteFile { path: p.run.join(rel), contents: p.state.clone().into() }));
}

/// Where the composefs image is mounted while its overlay is made (ostree's
/// `/run/ostree/.private/cfsroot-lower`): detached once the overlay holds it.
pub fn composefs_image_dir(run: &Path) -> PathBuf {
    run.join("ostree/.private/cfsroot-lower")
}

/// Where a transient root keeps its overlay's upper and work directories
/// at boot (ostree's `/run/ostree/.private/root/{upper,work}`).
pub fn transient_root_dir(run: &Path) -> PathBuf {
    run.join("ostree/.private/root")
}

/// The steps that put the deployment's root at `root`: a bind of its
/// directory, or, as ostree's `otcore_mount_rootfs` does, its composefs
/// image over the repository's objects (transient: with an upper
/// directory in /run).
fn mount_root(p: &PrepareRoot, root: &Path, transient_root: &Path, steps: &mut Vec<Step>) {
    let step = |purpose, op| Step { purpose, op };
    let deploy = p.sysroot.join(p.deployment.dir());
    let Root::Composefs(cfs) = &p.root else {
        steps.push(step(Purpose::BindDeployment, Op::Bind { source: deploy, target: root.to_path_buf() }));
        return;
    };
    let image_dir = composefs_image_dir(p.run);
    steps.push(step(Purpose::CreateComposefsDirs, Op::Mkdir { path: image_dir.clone() }));
    let transient = p.config.root.transient || p.config.root.transient_ro;
    let upper = transient.then(|| (transient_root.join("upper"), transient_root.join("work")));
    if let Some((upper, work)) = &upper {
        for dir in [upper, work] {
            steps.push(step(Purpose::CreateComposefsDirs, Op::Mkdir { path: dir.clone() }));
        }
    }
    steps.push(step(
        Purpose::MountComposefsImage,
        Op::MountImage { image: deploy.join(IMAGE), target: image_dir.clone(), verity: cfs.verity },
    ));
    steps.push(step(
        Purpose::MountComposefs,
        Op::ComposefsOverlay {
            target: root.to_path_buf(),
            metadata: image_dir.clone(),
            objects: p.sysroot.join("ostree/repo/objects"),
            verity: cfs.verity(),
            read_only: upper.is_none() || p.config.root.transient_ro,
            upper,
        },
    ));
    steps.push(step(Purpose::DetachComposefsImage, Op::Detach { target: image_dir }));
}

/// The steps that lay out the deployment in `root`, a bind of its
/// directory or its composefs root: /usr read-only (or the hotfix overlay), /etc, the stateroot's
/// /var, /boot when it is on the physical root, the physical root at
/// `root/sysroot`. A transient /etc keeps its upper and work directories in
/// `transient_etc`.
fn lay_out(p: &PrepareRoot, root: &Path, transient_etc: &Path, steps: &mut Vec<Step>) {
    let step = |purpose, op| Step { purpose, op };
    // The deployment's own files (/etc, the hotfixes): in `root` when it
    // is the directory bound; a composefs root holds only the image's tree.
    let composefs = matches!(p.root, Root::Composefs(_));
    let deploy = p.sysroot.join(p.deployment.dir());
    let files = if composefs { deploy.as_path() } else { root };
    // As ostree: a signed root takes no hotfix (it would be unsigned).
    let signed = matches!(&p.root, Root::Composefs(c) if c.signed_by.is_some());
    let (mut usr, mut etc) = (Vec::new(), Vec::new());
    if p.hotfix && !signed {
        // As ostree-prepare-root: an overlay with the deployment's usr as
        // its lower layer, and the hotfixes, kept across reboots, in the
        // deployment's directory. Overlayfs refuses a read-only upper, so a
        // read-only physical root is remounted read-write first (the
        // filesystem, and this mount of it).
        if p.physical_root_read_only {
            let mount = if composefs { p.sysroot } else { root };
            usr.push(step(
                Purpose::RemountRootWritable,
                Op::Remount { target: mount.to_path_buf(), bind: false, read_only: false },
            ));
        }
        usr.push(step(
            Purpose::OverlayHotfixUsr,
            Op::Overlay {
                target: root.join("usr"),
                lower: root.join("usr"),
                upper: files.join(HOTFIX_UPPER),
                work: files.join(HOTFIX_WORK),
            },
        ));
    } else if !composefs {
        // (A composefs root is read-only as a whole.)
        usr.push(step(Purpose::BindUsr, Op::Bind { source: root.join("usr"), target: root.join("usr") }));
        usr.push(step(
            Purpose::RemountUsrReadOnly,
            Op::Remount { target: root.join("usr"), bind: true, read_only: true },
        ));
    }
    if p.config.etc.transient {
        // As ostree-prepare-root: the image's defaults (usr/etc) below an
        // upper directory in /run, so nothing written to /etc outlives the boot.
        let base = transient_etc.to_path_buf();
        let (upper, work) = (base.join("upper"), base.join("work"));
        etc.push(step(Purpose::CreateTransientEtc, Op::Mkdir { path: upper.clone() }));
        etc.push(step(Purpose::CreateTransientEtc, Op::Mkdir { path: work.clone() }));
        etc.push(step(
            Purpose::OverlayTransientEtc,
            Op::Overlay { target: root.join("etc"), lower: root.join("usr/etc"), upper, work },
        ));
    } else {
        // Its own mount, so /etc stays writable whatever happens to the
        // mounts around it (a read-only /sysroot, ostree-remount).
        etc.push(step(Purpose::BindEtc, Op::Bind { source: files.join("etc"), target: root.join("etc") }));
        // A bind of a read-only mount is read-only: made writable here, it
        // is writable once the filesystem is (systemd-remount-fs remounts /
        // read-write), as /etc is under ostree-prepare-root.
        if p.physical_root_read_only {
            etc.push(step(
                Purpose::RemountEtcWritable,
                Op::Remount { target: root.join("etc"), bind: true, read_only: false },
            ));
        }
    }
    // ostree lays out /etc before /usr. Under composefs the order matters:
    // a transient /etc's lower layer is the image's usr/etc, not a hotfix
    // overlay's (an overlay over that stacks deeper than the kernel allows).
    if composefs {
        steps.extend(etc.into_iter().chain(usr));
    } else {
        steps.extend(usr.into_iter().chain(etc));
    }
    steps.push(step(
        Purpose::BindVar,
        Op::Bind { source: p.sysroot.join(p.deployment.var_dir()), target: root.join("var") },
    ));
    if p.physical_root_read_only {
        steps.push(step(
            Purpose::RemountVarWritable,
            Op::Remount { target: root.join("var"), bind: true, read_only: false },
        ));
    }
    if p.bind_boot {
        steps.push(step(
            Purpose::BindBoot,
            Op::Bind { source: p.sysroot.join("boot"), target: root.join("boot") },
        ));
    }
    steps.push(step(
        Purpose::BindPhysicalRoot,
        Op::Bind { source: p.sysroot.to_path_buf(), target: root.join("sysroot") },
    ));
    if p.config.sysroot.readonly {
        steps.push(step(
            Purpose::RemountSysrootReadOnly,
            Op::Remount { target: root.join("sysroot"), bind: true, read_only: true },
        ));
    }
}

/// /run/ostree-booted as ostree ≥ 2023 writes it, a GVariant `a{sv}` (older
/// ostree only tests that the file exists): the deployment directory's
/// (device, inode), with a composefs root `composefs`, `composefs.verity`
/// and `composefs.signed` (the key file), `root.transient` (and
/// `root.transient-ro`), `sysroot-ro` (trixie's ostree-remount keeps
/// /sysroot read-only after switch root only when this says so) and, with a transient /etc,
/// where its upper directory is (ostree-remount relabels what is in it).
pub fn ostree_booted(p: &PrepareRoot, transient_etc: &Path) -> Vec<u8> {
    let transient_etc = transient_etc.to_string_lossy().into_owned();
    let mut entries = Vec::new();
    if let Some((dev, ino)) = p.backing {
        entries.push(("backing-root-device-inode", gvariant::Value::U64Pair(dev, ino)));
    }
    let signed_by;
    if let Root::Composefs(cfs) = &p.root {
        entries.push(("composefs", gvariant::Value::Bool(true)));
        entries.push(("composefs.verity", gvariant::Value::Bool(cfs.verity())));
        if let Some(key) = &cfs.signed_by {
            signed_by = key.to_string_lossy().into_owned();
            entries.push(("composefs.signed", gvariant::Value::Str(&signed_by)));
        }
        let transient = p.config.root.transient || p.config.root.transient_ro;
        entries.push(("root.transient", gvariant::Value::Bool(transient)));
        entries.push(("root.transient-ro", gvariant::Value::Bool(p.config.root.transient_ro)));
    } else {
        entries.push(("root.transient", gvariant::Value::Bool(false)));
    }
    entries.push(("sysroot-ro", gvariant::Value::Bool(p.config.sysroot.readonly)));
    if p.config.etc.transient {
        entries.push(("transient-etc", gvariant::Value::Str(&transient_etc)));
    }
    gvariant::vardict(&entries)
}

/// Where a transient /etc keeps its overlay's upper and work directories:
/// where ostree-prepare-root keeps them.
pub fn transient_etc_dir(run: &Path) -> PathBuf {
    run.join("ostree/transient-etc")
}

/// The plan as `--dry-run` prints it: one numbered step per line.
pub fn render(steps: &[Step]) -> String {
    steps.iter().enumerate().map(|(i, s)| format!("{:>2}. {s}\n", i + 1)).collect()
}

/// A step that failed: which step, on which path, with which errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepFailed {
    pub number: usize,
    /// Boxed: an operation is large, and this is the error of a `Result`.
    pub step: Box<Step>,
    pub errno: Errno,
}

/// Run the steps in order. On a failure, undo the mounts made so far (every
/// one, newest first, wherever it is; see [`undo`]) so the sysroot is as it
/// was and another deployment can be tried.
pub fn run_plan(sys: &mut dyn System, steps: &[Step]) -> Result<(), StepFailed> {
    // Every mount made so far, in order: on a failure each is detached,
    // newest first, wherever it is (not only the staging tree).
    let mut mounted: Vec<&Path> = Vec::new();
    let mut moved: Option<(&Path, &Path)> = None;
    for (i, step) in steps.iter().enumerate() {
        if let Err(errno) = sys.execute(&step.op) {
            undo(sys, &mounted, moved);
            return Err(StepFailed { number: i + 1, step: Box::new(step.clone()), errno });
        }
        match &step.op {
            Op::Bind { target, .. }
            | Op::Overlay { target, .. }
            | Op::MountImage { target, .. }
            | Op::ComposefsOverlay { target, .. } => mounted.push(target),
            Op::Detach { target } => mounted.retain(|m| m != target),
            Op::Move { source, target } => moved = Some((source, target)),
            _ => {}
        }
    }
    Ok(())
}

/// Detach the mounts a failed plan made, newest first. Mounts below a tree
/// that was moved went with it: the move's target is detached last (which
/// detaches them too); every other mount is detached at its own target.
/// Best effort: the error reported is the failed step's own.
fn undo(sys: &mut dyn System, mounted: &[&Path], moved: Option<(&Path, &Path)>) {
    let mut targets: Vec<&Path> = mounted
        .iter()
        .rev()
        .filter(|t| moved.is_none_or(|(source, _)| !t.starts_with(source)))
        .copied()
        .collect();
    if let Some((_, target)) = moved {
        targets.push(target);
    }
    for target in targets {
        if let Err(e) = sys.execute(&Op::Detach { target: target.to_path_buf() }) {
            log::warn!("could not detach {} after the failure: {e}", target.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Deployment {
        Deployment {
            index: 0,
            stateroot: "os".into(),
            csum: "c".repeat(64),
            serial: 1,
            bootcsum: "b".repeat(64),
            bootserial: 0,
            ostree_arg: String::new(),
            entry: "ostree-1-os.conf".into(),
            version: "1".into(),
            options: String::new(),
            linux: None,
            initrd: None,
        }
    }

    fn ops(config: &Config) -> Vec<(Purpose, String)> {
        ops_with(config, false)
    }

    fn ops_with(config: &Config, bind_boot: bool) -> Vec<(Purpose, String)> {
        ops_all(config, bind_boot, false, false)
    }

    fn ops_all(config: &Config, bind_boot: bool, hotfix: bool, ro: bool) -> Vec<(Purpose, String)> {
        let d = deployment();
        let plan = prepare_root(&PrepareRoot {
            sysroot: Path::new("/sysroot"),
            run: Path::new("/run"),
            deployment: &d,
            config,
            bind_boot,
            hotfix,
            physical_root_read_only: ro,
            backing: None,
            state: "x=1\n".into(),
            root: Root::Plain,
            root_device: None,
            mask_bless_boot: false,
        });
        plan.iter().map(|s| (s.purpose, format!("{:?}", s.op))).collect()
    }

    #[test]
    fn default_plan_is_exact() {
        let c = "c".repeat(64);
        let want: Vec<(Purpose, String)> = vec![
            (Purpose::MakeRootPrivate, r#"MakeRprivate { target: "/" }"#.into()),
            (Purpose::CreateStaging, r#"Mkdir { path: "/sysroot.tmp" }"#.into()),
            (
                Purpose::BindDeployment,
                format!(
                    r#"Bind {{ source: "/sysroot/ostree/deploy/os/deploy/{c}.1", target: "/sysroot.tmp" }}"#
                ),
            ),
            (Purpose::BindUsr, r#"Bind { source: "/sysroot.tmp/usr", target: "/sysroot.tmp/usr" }"#.into()),
            (
                Purpose::RemountUsrReadOnly,
                r#"Remount { target: "/sysroot.tmp/usr", bind: true, read_only: true }"#.into(),
            ),
            (Purpose::BindEtc, r#"Bind { source: "/sysroot.tmp/etc", target: "/sysroot.tmp/etc" }"#.into()),
            (
                Purpose::BindVar,
                r#"Bind { source: "/sysroot/ostree/deploy/os/var", target: "/sysroot.tmp/var" }"#.into(),
            ),
            (
                Purpose::BindPhysicalRoot,
                r#"Bind { source: "/sysroot", target: "/sysroot.tmp/sysroot" }"#.into(),
            ),
            (Purpose::MoveToSysroot, r#"Move { source: "/sysroot.tmp", target: "/sysroot" }"#.into()),
            (
                Purpose::WriteOstreeBooted,
                format!(
                    r#"WriteFile {{ path: "/run/ostree-booted", contents: {:?} }}"#,
                    crate::seam::Contents(gvariant::vardict(&[
                        ("root.transient", gvariant::Value::Bool(false)),
                        ("sysroot-ro", gvariant::Value::Bool(false)),
                    ]))
                ),
            ),
            (Purpose::WriteRunMarker, r#"Mkdir { path: "/run/ostree" }"#.into()),
            (
                Purpose::WriteRunMarker,
                r#"WriteFile { path: "/run/ostree/initramfs-mount-var", contents: "" }"#.into(),
            ),
            (Purpose::WriteState, r#"Mkdir { path: "/run/rootstock" }"#.into()),
            (Purpose::WriteState, r#"WriteFile { path: "/run/rootstock/state", contents: "x=1\n" }"#.into()),
            (Purpose::RemoveStaging, r#"RemoveDir { dir: "/", name: "sysroot.tmp" }"#.into()),
        ];
        assert_eq!(ops(&Config::default()), want);
    }

    /// What a composefs root's plan is made from (a read-only physical root
    /// on device 254:2).
    fn composefs_root<'a>(
        d: &'a Deployment,
        config: &'a Config,
        cfs: crate::composefs::Composefs,
        hotfix: bool,
    ) -> PrepareRoot<'a> {
        PrepareRoot {
            sysroot: Path::new("/sysroot"),
            run: Path::new("/run"),
            deployment: d,
            config,
            bind_boot: false,
            hotfix,
            physical_root_read_only: true,
            backing: None,
            state: "x=1\n".into(),
            root: Root::Composefs(cfs),
            root_device: Some((254, 2)),
            mask_bless_boot: false,
        }
    }

    /// The plan for a composefs root under `config`, as --dry-run prints it.
    fn composefs_plan(config: &Config, verity: crate::seam::ImageVerity, hotfix: bool) -> String {
        let d = deployment();
        let cfs = crate::composefs::Composefs { verity, signed_by: None, keys_text: None };
        render(&prepare_root(&composefs_root(&d, config, cfs, hotfix)))
    }

    #[test]
    fn composefs_root_is_the_image_over_the_objects() {
        let deploy = format!("/sysroot/ostree/deploy/os/deploy/{}.1", "c".repeat(64));
        let text = composefs_plan(&Config::default(), crate::seam::ImageVerity::Required, false);
        let want = format!(
            " 1. mount  none -> / [MS_REC|MS_PRIVATE]  # make / recursively private
 2. mkdir  - -> /sysroot.tmp [0755]  # create the staging directory
 3. mkdir  - -> /run/ostree/.private/cfsroot-lower [0755]  # create the composefs directories
 4. mount  {deploy}/.ostree.cfs -> /run/ostree/.private/cfsroot-lower [erofs MS_RDONLY, fs-verity required]  # mount the deployment's composefs image
 5. mount  overlay -> /sysroot.tmp [overlay MS_RDONLY lowerdir=/run/ostree/.private/cfsroot-lower::/sysroot/ostree/repo/objects,metacopy=on,redirect_dir=on,verity=require]  # mount the composefs root
 6. umount - -> /run/ostree/.private/cfsroot-lower [MNT_DETACH]  # detach the composefs image's own mount
 7. mount  {deploy}/etc -> /sysroot.tmp/etc [MS_BIND]  # bind /etc
 8. mount  none -> /sysroot.tmp/etc [MS_REMOUNT|MS_BIND]  # make the /etc bind writable
 9. mount  /sysroot/ostree/deploy/os/var -> /sysroot.tmp/var [MS_BIND]  # bind the stateroot's /var
10. mount  none -> /sysroot.tmp/var [MS_REMOUNT|MS_BIND]  # make the /var bind writable
11. mount  /sysroot -> /sysroot.tmp/sysroot [MS_BIND]  # bind the physical root at /sysroot
12. mount  /sysroot.tmp -> /sysroot [MS_MOVE]  # move the new root onto the sysroot
"
        );
        assert!(text.starts_with(&want), "{text}");
        assert!(!text.contains("/usr"), "a composefs root needs no /usr mount: {text}");
        assert!(
            text.contains("symlink /dev/block/254:2 -> /run/systemd/volatile-root [replace]  # link /run/systemd/volatile-root"),
            "{text}"
        );
    }

    #[test]
    fn a_soft_reboot_lays_out_the_composefs_root_at_nextroot() {
        let d = deployment();
        let config = Config::default();
        let cfs = crate::composefs::Composefs {
            verity: crate::seam::ImageVerity::Required,
            signed_by: None,
            keys_text: None,
        };
        let p = composefs_root(&d, &config, cfs, false);
        let steps = soft_reboot(
            &p,
            Path::new("/run/nextroot"),
            Path::new("/run/ostree/transient-etc.soft-reboot.0"),
            Path::new("/run/ostree/.private/root.soft-reboot.0"),
        );
        let purposes: Vec<Purpose> = steps.iter().map(|s| s.purpose).collect();
        assert_eq!(
            purposes[..6],
            [
                Purpose::CreateNextRoot,
                Purpose::CreateComposefsDirs,
                Purpose::MountComposefsImage,
                Purpose::MountComposefs,
                Purpose::DetachComposefsImage,
                Purpose::MakeNextRootPrivate,
            ]
        );
        assert!(
            matches!(&steps[3].op, Op::ComposefsOverlay { target, verity: true, read_only: true, .. } if target == Path::new("/run/nextroot"))
        );
        assert!(!purposes.contains(&Purpose::BindDeployment) && !purposes.contains(&Purpose::BindUsr));
        // A transient root's directories are the soft reboot's own.
        let mut transient = Config::default();
        transient.root.transient = true;
        let cfs = crate::composefs::Composefs {
            verity: crate::seam::ImageVerity::Unchecked,
            signed_by: None,
            keys_text: None,
        };
        let p = composefs_root(&d, &transient, cfs, false);
        let text = render(&soft_reboot(
            &p,
            Path::new("/n"),
            Path::new("/e"),
            Path::new("/run/ostree/.private/root.soft-reboot.0"),
        ));
        assert!(text.contains("upperdir=/run/ostree/.private/root.soft-reboot.0/upper,workdir=/run/ostree/.private/root.soft-reboot.0/work"), "{text}");
    }

    #[test]
    fn a_signed_root_leaves_its_keys_in_run_for_a_soft_reboot() {
        let d = deployment();
        let config = Config::default();
        let cfs = crate::composefs::Composefs {
            verity: crate::seam::ImageVerity::Digest([7; 32]),
            signed_by: Some("/etc/ostree/initramfs-root-binding.key".into()),
            keys_text: Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n".into()),
        };
        let p = composefs_root(&d, &config, cfs, true);
        let text = render(&prepare_root(&p));
        assert!(text.contains("fs-verity sha256:0707"), "{text}");
        assert!(text.contains("write  45 bytes -> /run/rootstock/composefs-keys [atomic]"), "{text}");
        assert!(!text.contains("hotfix"), "no hotfix over a signed root: {text}");
    }

    #[test]
    fn transient_composefs_root_has_its_upper_in_run() {
        let mut c = Config::default();
        c.root.transient_ro = true;
        let text = composefs_plan(&c, crate::seam::ImageVerity::Unchecked, false);
        for dir in ["upper", "work"] {
            let line = format!(
                "mkdir  - -> /run/ostree/.private/root/{dir} [0755]  # create the composefs directories"
            );
            assert!(text.contains(&line), "{text}");
        }
        let overlay = "overlay MS_RDONLY lowerdir=/run/ostree/.private/cfsroot-lower::/sysroot/ostree/repo/objects,\
                       metacopy=on,redirect_dir=on,upperdir=/run/ostree/.private/root/upper,\
                       workdir=/run/ostree/.private/root/work]";
        assert!(text.contains(overlay), "{text}");
        c.root.transient_ro = false;
        c.root.transient = true;
        let text = composefs_plan(&c, crate::seam::ImageVerity::Unchecked, false);
        assert!(text.contains("[overlay lowerdir="), "transient: writable: {text}");
        // The hotfix overlay's upper and work are in the deployment's
        // directory, not in the image.
        let text = composefs_plan(&Config::default(), crate::seam::ImageVerity::Unchecked, true);
        let deploy = format!("/sysroot/ostree/deploy/os/deploy/{}.1", "c".repeat(64));
        assert!(
            text.contains("mount  none -> /sysroot [MS_REMOUNT]  # remount the physical root read-write"),
            "{text}"
        );
        assert!(
            text.contains(&format!("upperdir={deploy}/.usr-ovl-upper,workdir={deploy}/.usr-ovl-work]")),
            "{text}"
        );
        // With a transient /etc too: /etc first, over the image's usr/etc
        // (as ostree; over the hotfix overlay it would stack too deep).
        let mut c = Config::default();
        c.etc.transient = true;
        let text = composefs_plan(&c, crate::seam::ImageVerity::Unchecked, true);
        let etc = text.find("lowerdir=/sysroot.tmp/usr/etc,").expect(&text);
        let hotfix = text.find("# mount the hotfix overlay").expect(&text);
        assert!(etc < hotfix, "{text}");
    }

    #[test]
    fn boot_on_the_physical_root_is_bound_before_the_physical_root() {
        let got = ops_with(&Config::default(), true);
        let purposes: Vec<Purpose> = got.iter().map(|(p, _)| *p).collect();
        let boot = purposes.iter().position(|p| *p == Purpose::BindBoot).unwrap();
        assert_eq!(purposes[boot - 1], Purpose::BindVar);
        assert_eq!(purposes[boot + 1], Purpose::BindPhysicalRoot);
        assert_eq!(got[boot].1, r#"Bind { source: "/sysroot/boot", target: "/sysroot.tmp/boot" }"#);
        assert!(!ops(&Config::default()).iter().any(|(p, _)| *p == Purpose::BindBoot));
    }

    #[test]
    fn readonly_sysroot_and_transient_etc() {
        let mut c = Config::default();
        c.sysroot.readonly = true;
        c.etc.transient = true;
        let got = ops(&c);
        let purposes: Vec<Purpose> = got.iter().map(|(p, _)| *p).collect();
        assert!(!purposes.contains(&Purpose::BindEtc));
        let ro = purposes.iter().position(|p| *p == Purpose::RemountSysrootReadOnly).unwrap();
        let bind = purposes.iter().position(|p| *p == Purpose::BindPhysicalRoot).unwrap();
        let mv = purposes.iter().position(|p| *p == Purpose::MoveToSysroot).unwrap();
        assert!(bind < ro && ro < mv);
        assert_eq!(got[ro].1, r#"Remount { target: "/sysroot.tmp/sysroot", bind: true, read_only: true }"#);
        let stamp = purposes.iter().position(|p| *p == Purpose::WriteSysrootReadOnlyStamp).unwrap();
        assert!(mv < stamp);
        assert_eq!(got[stamp].1, r#"WriteFile { path: "/run/ostree-sysroot-ro.stamp", contents: "" }"#);
        assert!(!ops(&Config::default()).iter().any(|(p, _)| *p == Purpose::WriteSysrootReadOnlyStamp));
        let ov = purposes.iter().position(|p| *p == Purpose::OverlayTransientEtc).unwrap();
        assert_eq!(
            got[ov].1,
            r#"Overlay { target: "/sysroot.tmp/etc", lower: "/sysroot.tmp/usr/etc", upper: "/run/ostree/transient-etc/upper", work: "/run/ostree/transient-etc/work" }"#
        );
    }

    #[test]
    fn hotfix_mounts_an_overlay_on_usr() {
        let c = "c".repeat(64);
        let got = ops_all(&Config::default(), false, true, false);
        let purposes: Vec<Purpose> = got.iter().map(|(p, _)| *p).collect();
        assert!(!purposes.contains(&Purpose::BindUsr) && !purposes.contains(&Purpose::RemountUsrReadOnly));
        assert!(!purposes.contains(&Purpose::RemountRootWritable), "the root is writable already");
        assert_eq!(
            &got[2..4],
            &[
                (
                    Purpose::BindDeployment,
                    format!(
                        r#"Bind {{ source: "/sysroot/ostree/deploy/os/deploy/{c}.1", target: "/sysroot.tmp" }}"#
                    ),
                ),
                (
                    Purpose::OverlayHotfixUsr,
                    r#"Overlay { target: "/sysroot.tmp/usr", lower: "/sysroot.tmp/usr", upper: "/sysroot.tmp/.usr-ovl-upper", work: "/sysroot.tmp/.usr-ovl-work" }"#
                        .into()
                ),
            ]
        );
        // Everything else is as without the hotfix.
        let locked = ops(&Config::default());
        let rest = |v: &[(Purpose, String)]| -> Vec<(Purpose, String)> {
            v.iter()
                .filter(|(p, _)| {
                    !matches!(p, Purpose::BindUsr | Purpose::RemountUsrReadOnly | Purpose::OverlayHotfixUsr)
                })
                .cloned()
                .collect()
        };
        assert_eq!(rest(&got), rest(&locked));
    }

    #[test]
    fn hotfix_on_a_read_only_root_remounts_it_read_write_first() {
        let got = ops_all(&Config::default(), false, true, true);
        let purposes: Vec<Purpose> = got.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            &purposes[2..5],
            &[Purpose::BindDeployment, Purpose::RemountRootWritable, Purpose::OverlayHotfixUsr]
        );
        assert_eq!(got[3].1, r#"Remount { target: "/sysroot.tmp", bind: false, read_only: false }"#);
    }

    #[test]
    fn read_only_root_keeps_etc_and_var_binds_writable() {
        let got = ops_all(&Config::default(), false, false, true);
        let purposes: Vec<Purpose> = got.iter().map(|(p, _)| *p).collect();
        assert!(!purposes.contains(&Purpose::RemountRootWritable), "only the hotfix needs the root writable");
        let etc = purposes.iter().position(|p| *p == Purpose::BindEtc).unwrap();
        assert_eq!(
            got[etc + 1],
            (
                Purpose::RemountEtcWritable,
                r#"Remount { target: "/sysroot.tmp/etc", bind: true, read_only: false }"#.into()
            )
        );
        let var = purposes.iter().position(|p| *p == Purpose::BindVar).unwrap();
        assert_eq!(
            got[var + 1],
            (
                Purpose::RemountVarWritable,
                r#"Remount { target: "/sysroot.tmp/var", bind: true, read_only: false }"#.into()
            )
        );
        // A transient /etc is an overlay with its upper in /run: nothing to remount.
        let mut c = Config::default();
        c.etc.transient = true;
        let got = ops_all(&c, false, false, true);
        assert!(!got.iter().any(|(p, _)| *p == Purpose::RemountEtcWritable));
        assert!(got.iter().any(|(p, _)| *p == Purpose::RemountVarWritable));
        // Nothing of this on a writable root.
        assert!(
            !ops(&Config::default())
                .iter()
                .any(|(p, _)| matches!(p, Purpose::RemountEtcWritable | Purpose::RemountVarWritable))
        );
    }

    #[test]
    fn ostree_booted_says_what_ostree_2025_would() {
        use gvariant::Value::*;
        let d = deployment();
        let config = Config::default();
        let mut p = PrepareRoot {
            sysroot: Path::new("/sysroot"),
            run: Path::new("/run"),
            deployment: &d,
            config: &config,
            bind_boot: false,
            hotfix: false,
            physical_root_read_only: false,
            backing: Some((27, 96894)),
            state: String::new(),
            root: Root::Plain,
            root_device: None,
            mask_bless_boot: false,
        };
        assert_eq!(
            ostree_booted(&p, &transient_etc_dir(p.run)),
            gvariant::vardict(&[
                ("backing-root-device-inode", U64Pair(27, 96894)),
                ("root.transient", Bool(false)),
                ("sysroot-ro", Bool(false)),
            ])
        );
        let mut both = Config::default();
        both.sysroot.readonly = true;
        both.etc.transient = true;
        p.config = &both;
        let want = gvariant::vardict(&[
            ("backing-root-device-inode", U64Pair(27, 96894)),
            ("root.transient", Bool(false)),
            ("sysroot-ro", Bool(true)),
            ("transient-etc", Str(transient_etc_dir(Path::new("/run")).to_str().unwrap())),
        ]);
        assert_eq!(ostree_booted(&p, &transient_etc_dir(p.run)), want);
        let step = prepare_root(&p).into_iter().find(|s| s.purpose == Purpose::WriteOstreeBooted).unwrap();
        assert_eq!(step.op, Op::WriteFile { path: "/run/ostree-booted".into(), contents: want.into() });
    }

    #[test]
    fn dry_run_rendering_names_source_target_flags() {
        let d = deployment();
        let cfg = Config::default();
        let text = render(&prepare_root(&PrepareRoot {
            sysroot: Path::new("/sysroot"),
            run: Path::new("/run"),
            deployment: &d,
            config: &cfg,
            bind_boot: false,
            hotfix: false,
            physical_root_read_only: false,
            backing: None,
            state: String::new(),
            root: Root::Plain,
            root_device: None,
            mask_bless_boot: false,
        }));
        assert!(text.contains(" 5. mount  none -> /sysroot.tmp/usr [MS_REMOUNT|MS_BIND|MS_RDONLY]  # remount /usr read-only\n"), "{text}");
        assert!(text.contains(" 9. mount  /sysroot.tmp -> /sysroot [MS_MOVE]"), "{text}");
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;
    use crate::seam::fake::Recorder;

    fn steps() -> Vec<Step> {
        let s = |purpose, op| Step { purpose, op };
        vec![
            s(Purpose::MakeRootPrivate, Op::MakeRprivate { target: "/".into() }),
            s(Purpose::BindDeployment, Op::Bind { source: "/s/d".into(), target: "/s.tmp".into() }),
            s(
                Purpose::RemountUsrReadOnly,
                Op::Remount { target: "/s.tmp/usr".into(), bind: true, read_only: true },
            ),
            s(Purpose::MoveToSysroot, Op::Move { source: "/s.tmp".into(), target: "/s".into() }),
            s(Purpose::WriteState, Op::WriteFile { path: "/run/x".into(), contents: "".into() }),
        ]
    }

    #[test]
    fn runs_every_step_in_order() {
        let mut r = Recorder::new();
        run_plan(&mut r, &steps()).unwrap();
        assert_eq!(
            r.operations().cloned().collect::<Vec<_>>(),
            steps().into_iter().map(|s| s.op).collect::<Vec<_>>()
        );
    }

    #[test]
    fn failure_names_step_and_undoes_mounts() {
        let cases: [(usize, Option<&str>); 5] =
            [(1, None), (2, None), (3, Some("/s.tmp")), (4, Some("/s.tmp")), (5, Some("/s"))];
        for (n, detached) in cases {
            let mut r = Recorder::failing_at(n, Errno::ROFS);
            let err = run_plan(&mut r, &steps()).unwrap_err();
            assert_eq!(err.number, n);
            assert_eq!(err.errno, Errno::ROFS);
            assert_eq!(*err.step, steps()[n - 1]);
            let mut want: Vec<Op> = steps()[..n].iter().map(|s| s.op.clone()).collect();
            want.extend(detached.map(|t| Op::Detach { target: t.into() }));
            assert_eq!(r.operations().cloned().collect::<Vec<_>>(), want, "fail at {n}: stops there, undoes");
        }
    }

    #[test]
    fn a_failure_detaches_every_mount_made_newest_first_wherever_it_is() {
        let s = |purpose, op| Step { purpose, op };
        let bind = |t: &str| Op::Bind { source: "/src".into(), target: t.into() };
        let plan = vec![
            s(Purpose::BindDeployment, bind("/s.tmp")),
            s(Purpose::BindUsr, bind("/s.tmp/usr")),
            // A mount that landed outside the staging tree.
            s(Purpose::BindVar, bind("/elsewhere")),
            s(Purpose::BindPhysicalRoot, bind("/s.tmp/sysroot")),
            s(Purpose::MoveToSysroot, Op::Move { source: "/s.tmp".into(), target: "/s".into() }),
            s(Purpose::WriteState, Op::WriteFile { path: "/run/x".into(), contents: "".into() }),
        ];
        let detached = |r: &Recorder| -> Vec<String> {
            r.operations()
                .filter_map(|op| match op {
                    Op::Detach { target } => Some(target.display().to_string()),
                    _ => None,
                })
                .collect()
        };
        for errno in [Errno::ROFS, Errno::NOSPC, Errno::INVAL, Errno::PERM, Errno::NOENT] {
            let mut r = Recorder::failing_at(5, errno);
            assert_eq!(run_plan(&mut r, &plan).unwrap_err().number, 5);
            assert_eq!(detached(&r), ["/s.tmp/sysroot", "/elsewhere", "/s.tmp/usr", "/s.tmp"], "{errno}");
            let mut r = Recorder::failing_at(6, errno);
            assert_eq!(
                run_plan(&mut r, &plan).unwrap_err().step.purpose.to_string(),
                "write /run/rootstock/state"
            );
            assert_eq!(detached(&r), ["/elsewhere", "/s"], "{errno}: the moved tree went with the move");
        }
    }
}
