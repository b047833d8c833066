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
}

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
        "{deployment} keeps /etc transient (etc.transient) and every {}.soft-reboot.N is taken: \
         remove the ones no system uses, or reboot",
        dir.display()
    )]
    TransientEtcTaken { deployment: String, dir: PathBuf },
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
/// preparation first, so that running it twice is safe.
pub fn prepare(opts: &Options, sys: &mut dyn System) -> Result<Prepared, Error> {
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
    let config = opts.config.for_boot(opts.composefs, &opts.sysroot);
    crate::integrity::check(&opts.sysroot, &d, &config)
        .map_err(|error| Error::Unbootable { deployment: who.clone(), error })?;
    let hotfix = layout::hotfix(&opts.sysroot, &d)
        .map_err(|error| Error::Unbootable { deployment: who.clone(), error })?;
    reset(opts, sys)?;
    let transient_etc = match free_transient_etc_dir(&opts.run) {
        Some(dir) => dir,
        None if !config.etc.transient => plan::transient_etc_dir(&opts.run),
        None => {
            return Err(Error::TransientEtcTaken {
                deployment: who,
                dir: plan::transient_etc_dir(&opts.run),
            });
        }
    };
    // Counting is decided now and written once the layout stands: a
    // preparation that fails costs no try.
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
        reason: Reason::SoftReboot,
        init,
        counting: after,
        skipped: Vec::new(),
    };
    let layout = PrepareRoot::read(sys, &opts.sysroot, &opts.run, &d, &config);
    let p = PrepareRoot { hotfix, state: state.render(), ..layout };
    let mut steps = plan::soft_reboot(&p, &opts.nextroot, &transient_etc);
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
    // As at boot: duplicate and stale markers go first, then the attempt.
    counting.repair(sys);
    let counted = counting.record(sys, &base, change, "this soft reboot");
    state.counting = counted.count;
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
    Ok(Prepared::LaidOut { deployment: d, state, plan: steps, counting: counted.change })
}

/// A transient /etc's upper and work directories for the next userspace:
/// the boot's `/run/ostree/transient-etc` is the running one's, in use.
/// The first name free of `transient-etc.soft-reboot.N` (what a previous
/// one left is never reused: it may be the running system's).
fn free_transient_etc_dir(run: &Path) -> Option<PathBuf> {
    let base = plan::transient_etc_dir(run);
    (0..100)
        .map(|n| base.with_file_name(format!("transient-etc.soft-reboot.{n}")))
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
        cmdline: d.options.clone(),
        carry: None,
    };
    sys.execute(&Op::KexecLoad(image.clone())).map_err(|errno| Error::KexecLoad { kernel, errno })?;
    Ok(Prepared::Kexec { deployment: d, image })
}

/// Undo a prepared soft reboot: detach `nextroot` and everything below it,
/// remove the pending state and the `/var` marker written for the next
/// userspace. Nothing prepared is fine. Returns whether a root was detached.
pub fn reset(opts: &Options, sys: &mut dyn System) -> Result<bool, Error> {
    let detached = match sys.execute(&Op::Detach { target: opts.nextroot.clone() }) {
        Ok(()) => true,
        // EINVAL: not a mount point (nothing prepared); ENOENT: no such directory.
        Err(Errno::INVAL | Errno::NOENT) => false,
        Err(errno) => return Err(Error::Reset { what: "detach", path: opts.nextroot.clone(), errno }),
    };
    for rel in [PENDING_STATE, "ostree/initramfs-mount-var"] {
        let path = opts.run.join(rel);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { continue };
        let op = Op::Unlink { dir: dir.to_path_buf(), name: name.to_string_lossy().into_owned() };
        match sys.execute(&op) {
            // ENOENT: nothing was prepared.
            Ok(()) | Err(Errno::NOENT) => {}
            Err(errno) => return Err(Error::Reset { what: "remove", path, errno }),
        }
    }
    Ok(detached)
}

/// After a failure past the layout: detach it again (best effort).
fn undo_layout(opts: &Options, sys: &mut dyn System) {
    if let Err(e) = sys.execute(&Op::Detach { target: opts.nextroot.clone() }) {
        log::warn!("could not detach {} after the failure: {e}", opts.nextroot.display());
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
        }
    }

    fn physical_root() -> TempDir {
        let t = TempDir::new();
        fake_physical_root(t.path(), "r", Some(KVER));
        std::fs::create_dir_all(t.path().join("run")).unwrap();
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
            // A previous preparation is undone first: nothing was there.
            "umount - -> R/run/nextroot [MNT_DETACH]".to_string(),
            "unlink - -> R/run/rootstock/soft-reboot [file]".into(),
            "unlink - -> R/run/ostree/initramfs-mount-var [file]".into(),
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
        let rest = &got[want_prefix.len()..];
        assert!(rest[0].ends_with("-> R/run/ostree-booted [atomic]"), "{rest:#?}");
        assert!(rest[1].ends_with("-> R/run/ostree/initramfs-mount-var [atomic]"), "{rest:#?}");
        // The try is counted once the layout stands, then the pending state.
        let marker = rest.iter().position(|l| l.contains("ostree/rootstock")).expect("a marker written");
        let pending =
            rest.iter().position(|l| l.ends_with("-> R/run/rootstock/soft-reboot [atomic]")).unwrap();
        assert!(marker < pending && pending == rest.len() - 1, "{rest:#?}");
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
        assert_eq!(r.calls.len(), 0, "{:?}", r.lines());
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
        assert_eq!(r.calls.len(), 0, "{:?}", r.lines());
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
        assert_eq!(image.cmdline, format!("root=LABEL=r rw ostree=/ostree/boot.1/os/{C2}/0"));
        assert_eq!(r.kexec_images(), vec![image]);
        assert_eq!(r.operations().count(), 1, "{:?}", r.lines());
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
        let got = ops(&r, root);
        let tail: Vec<&str> = got.iter().rev().take(3).rev().map(String::as_str).collect();
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

    #[test]
    fn reset_tolerates_nothing_prepared_but_names_other_failures() {
        let t = physical_root();
        let o = opts(t.path(), None);
        let mut r = Recorder::failing_at(1, Errno::INVAL);
        assert_eq!(reset(&o, &mut r), Ok(false));
        let mut r = Recorder::new();
        assert_eq!(reset(&o, &mut r), Ok(true));
        let mut r = Recorder::failing_at(1, Errno::BUSY);
        let e = reset(&o, &mut r).unwrap_err();
        assert!(e.to_string().contains("detach") && e.to_string().contains("EBUSY"), "{e}");
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
