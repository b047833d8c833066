//! The mount plan: the steps that lay out a deployment, as data.
//!
//! A plan is computed in memory from the layout and the config, printed by
//! `--dry-run`, and executed step by step through the [`crate::seam`].

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::layout::Deployment;
pub use crate::seam::Op;

/// What a step is for; names the step in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    MakeRootPrivate,
    CreateStaging,
    BindDeployment,
    BindUsr,
    RemountUsrReadOnly,
    BindEtc,
    CreateTransientEtc,
    OverlayTransientEtc,
    BindVar,
    BindBoot,
    BindPhysicalRoot,
    RemountSysrootReadOnly,
    MoveToSysroot,
    WriteOstreeBooted,
    WriteRunMarker,
    WriteState,
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::MakeRootPrivate => "make / recursively private",
            Purpose::CreateStaging => "create the staging directory",
            Purpose::BindDeployment => "bind the deployment",
            Purpose::BindUsr => "bind /usr",
            Purpose::RemountUsrReadOnly => "remount /usr read-only",
            Purpose::BindEtc => "bind /etc",
            Purpose::CreateTransientEtc => "create the transient /etc directories",
            Purpose::OverlayTransientEtc => "mount the transient /etc overlay",
            Purpose::BindVar => "bind the stateroot's /var",
            Purpose::BindBoot => "bind the physical root's /boot",
            Purpose::BindPhysicalRoot => "bind the physical root at /sysroot",
            Purpose::RemountSysrootReadOnly => "remount /sysroot read-only",
            Purpose::MoveToSysroot => "move the new root onto the sysroot",
            Purpose::WriteOstreeBooted => "write /run/ostree-booted",
            Purpose::WriteRunMarker => "write a marker in /run/ostree",
            Purpose::WriteState => "write /run/rootstock/state",
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
    /// Contents of `/run/rootstock/state`.
    pub state: String,
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
    let deploy = p.sysroot.join(p.deployment.dir());
    let step = |purpose, op| Step { purpose, op };
    let mut steps = vec![
        // MS_MOVE refuses to move a mount whose parent is shared.
        step(Purpose::MakeRootPrivate, Op::MakeRprivate { target: PathBuf::from("/") }),
        step(Purpose::CreateStaging, Op::Mkdir { path: tmp.clone() }),
        step(Purpose::BindDeployment, Op::Bind { source: deploy, target: tmp.clone() }),
        step(Purpose::BindUsr, Op::Bind { source: tmp.join("usr"), target: tmp.join("usr") }),
        step(
            Purpose::RemountUsrReadOnly,
            Op::Remount { target: tmp.join("usr"), bind: true, read_only: true },
        ),
    ];
    if p.config.etc.transient {
        let base = p.run.join("rootstock/transient-etc");
        let (upper, work) = (base.join("upper"), base.join("work"));
        steps.push(step(Purpose::CreateTransientEtc, Op::Mkdir { path: upper.clone() }));
        steps.push(step(Purpose::CreateTransientEtc, Op::Mkdir { path: work.clone() }));
        steps.push(step(
            Purpose::OverlayTransientEtc,
            Op::Overlay { target: tmp.join("etc"), lower: tmp.join("etc"), upper, work },
        ));
    } else {
        // Its own mount, so /etc stays writable whatever happens to the
        // mounts around it (a read-only /sysroot, ostree-remount).
        steps.push(step(Purpose::BindEtc, Op::Bind { source: tmp.join("etc"), target: tmp.join("etc") }));
    }
    steps.push(step(
        Purpose::BindVar,
        Op::Bind { source: p.sysroot.join(p.deployment.var_dir()), target: tmp.join("var") },
    ));
    if p.bind_boot {
        steps.push(step(
            Purpose::BindBoot,
            Op::Bind { source: p.sysroot.join("boot"), target: tmp.join("boot") },
        ));
    }
    steps.push(step(
        Purpose::BindPhysicalRoot,
        Op::Bind { source: p.sysroot.to_path_buf(), target: tmp.join("sysroot") },
    ));
    if p.config.sysroot.readonly {
        steps.push(step(
            Purpose::RemountSysrootReadOnly,
            Op::Remount { target: tmp.join("sysroot"), bind: true, read_only: true },
        ));
    }
    steps.push(step(Purpose::MoveToSysroot, Op::Move { source: tmp, target: p.sysroot.to_path_buf() }));
    steps.push(step(
        Purpose::WriteOstreeBooted,
        Op::WriteFile { path: p.run.join("ostree-booted"), contents: String::new() },
    ));
    // ostree >= 2024.2's generator mounts /var itself unless this marker says
    // the initramfs did; without it /var would be mounted twice.
    steps.push(step(
        Purpose::WriteRunMarker,
        Op::WriteFile { path: p.run.join("ostree/initramfs-mount-var"), contents: String::new() },
    ));
    steps.push(step(
        Purpose::WriteState,
        Op::WriteFile { path: p.run.join("rootstock/state"), contents: p.state.clone() },
    ));
    steps
}

/// The plan as `--dry-run` prints it: one numbered step per line.
pub fn render(steps: &[Step]) -> String {
    steps.iter().enumerate().map(|(i, s)| format!("{:>2}. {s}\n", i + 1)).collect()
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
        let d = deployment();
        let plan = prepare_root(&PrepareRoot {
            sysroot: Path::new("/sysroot"),
            run: Path::new("/run"),
            deployment: &d,
            config,
            bind_boot,
            state: "x=1\n".into(),
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
            (Purpose::WriteOstreeBooted, r#"WriteFile { path: "/run/ostree-booted", contents: "" }"#.into()),
            (
                Purpose::WriteRunMarker,
                r#"WriteFile { path: "/run/ostree/initramfs-mount-var", contents: "" }"#.into(),
            ),
            (Purpose::WriteState, r#"WriteFile { path: "/run/rootstock/state", contents: "x=1\n" }"#.into()),
        ];
        assert_eq!(ops(&Config::default()), want);
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
        let ov = purposes.iter().position(|p| *p == Purpose::OverlayTransientEtc).unwrap();
        assert_eq!(
            got[ov].1,
            r#"Overlay { target: "/sysroot.tmp/etc", lower: "/sysroot.tmp/etc", upper: "/run/rootstock/transient-etc/upper", work: "/run/rootstock/transient-etc/work" }"#
        );
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
            state: String::new(),
        }));
        assert!(text.contains(" 5. mount  none -> /sysroot.tmp/usr [MS_REMOUNT|MS_BIND|MS_RDONLY]  # remount /usr read-only\n"), "{text}");
        assert!(text.contains(" 9. mount  /sysroot.tmp -> /sysroot [MS_MOVE]"), "{text}");
    }
}
