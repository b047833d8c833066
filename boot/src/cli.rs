//! The command line of the boot program: PID-1 mode when the kernel started
//! it as `/init`, else `prepare-root`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use rootstock_core::cmdline::KernelArgs;
use rootstock_core::config::Config;
use rootstock_core::errno::Errno;
use rootstock_core::prepare::Outcome;
use rootstock_core::seam::fake::Recorder;
use rootstock_core::seam::{Op, Query, System};
use rootstock_core::{confine, counting, logger, prepare, state};

use crate::error::Error;

#[derive(FromArgs, Debug)]
/// rootstock-boot: the boot program of rootstock. As /init of rootstock's own
/// initramfs it boots the machine; elsewhere it lays out an OSTree deployment
/// on a mounted physical root.
struct Top {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Cmd {
    PrepareRoot(PrepareRootArgs),
}

#[derive(FromArgs, Debug)]
/// Lay out the deployment on a mounted physical root (dracut/systemd mode):
/// afterwards SYSROOT is the deployment, with the physical root at
/// SYSROOT/sysroot, /usr read-only and /etc, /var writable.
#[argh(subcommand, name = "prepare-root")]
struct PrepareRootArgs {
    /// the kernel command line to read (default /proc/cmdline)
    #[argh(option, default = "PathBuf::from(\"/proc/cmdline\")")]
    cmdline: PathBuf,
    /// config file to use instead of /etc/rootstock/rootstock.conf or
    /// /usr/lib/rootstock/rootstock.conf
    #[argh(option)]
    config: Option<PathBuf>,
    /// directory under which the default config files are looked up (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    config_root: PathBuf,
    /// runtime directory for ostree-booted and rootstock/state (default /run)
    #[argh(option, default = "PathBuf::from(\"/run\")")]
    run_dir: PathBuf,
    /// after a kexec (rootstock.kexeced=), the first pass's state (default
    /// /rootstock-kexec-state, appended to the initramfs by the first pass)
    #[argh(option, default = "PathBuf::from(state::KEXEC_STATE)")]
    kexec_state: PathBuf,
    /// efivarfs, for systemd-boot's LoaderBootCountPath (default
    /// /sys/firmware/efi/efivars): an entry the boot loader counts is not
    /// counted again
    #[argh(option, default = "PathBuf::from(\"/sys/firmware/efi/efivars\")")]
    efivars: PathBuf,
    /// print the mount plan (each step: source, target, flags) and change nothing
    #[argh(switch)]
    dry_run: bool,
    /// where the physical root is mounted, e.g. /sysroot
    #[argh(positional)]
    sysroot: PathBuf,
}

/// Run the command line; returns the process exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    // Started by the kernel as /init: boot. Its arguments are the kernel's
    // leftovers for init, not a rootstock command line.
    if crate::pid1::is_initramfs_init() {
        crate::pid1::main(argv);
    }
    let top: Top = match rootstock_core::args::parse(&argv, "rootstock-boot") {
        Ok(t) => t,
        Err(code) => return code,
    };
    let result = match top.cmd {
        Cmd::PrepareRoot(a) => prepare_root(a),
    };
    rootstock_core::args::exit_code(result)
}

fn read_cmdline(path: &Path) -> Result<KernelArgs, Error> {
    // O_NONBLOCK, regular, capped: a FIFO or a device given as --cmdline
    // is an error, never a hang.
    let bytes = confine::read_file(path, confine::SMALL_FILE_CAP).map_err(Error::read_cmdline)?;
    // Bytes that are not UTF-8 become U+FFFD, which KernelArgs refuses in the
    // values rootstock uses; other arguments are none of our business.
    Ok(KernelArgs::parse(&String::from_utf8_lossy(&bytes))?)
}

fn prepare_root(a: PrepareRootArgs) -> Result<(), Error> {
    logger::init(false);
    let args = read_cmdline(&a.cmdline)?;
    logger::init(args.debug);
    for k in &args.unknown {
        log::warn!("ignoring unknown kernel argument {k}");
    }
    let (config, used) = Config::load(&a.config_root, a.config.as_deref())?;
    for p in used {
        log::debug!("config from {}", p.display());
    }
    std::fs::metadata(&a.sysroot)
        .map_err(|e| Error::SysrootMissing { path: a.sysroot.clone(), errno: Errno::from_io(&e) })?;
    if !a.dry_run && !prepare::is_mount_point(&a.sysroot).unwrap_or(false) {
        return Err(Error::SysrootNotMounted { path: a.sysroot });
    }
    let carried = state::read_carried(args.kexeced, &a.kexec_state);
    let opts = prepare::Options {
        loader_counted: rootstock_core::counting::loader_counted_entry(&a.efivars),
        sysroot: a.sysroot,
        run: a.run_dir,
        args,
        config,
        init: None,
        running_kver: None,
        carried,
    };
    if !a.dry_run {
        let sys = &mut rootstock_sys::Linux;
        rootstock_core::lock::at_boot(sys, &opts.sysroot, |sys| prepare::run(&opts, sys))?;
        return Ok(());
    }
    // The same run against a recorder: every change it would make, made
    // nowhere. A read-only sysroot is taken as a read-only filesystem (the
    // usual case: mounted `ro`), so the remounts around the counting change
    // show as they would be made.
    let mut recorder = Recorder::new();
    let read_only = Query::ReadOnly { path: opts.sysroot.clone() };
    if rootstock_sys::Linux.query(&read_only).unwrap_or(false) {
        recorder = recorder.with_read_only(&opts.sysroot, true);
    }
    let outcome =
        rootstock_core::lock::at_boot(&mut recorder, &opts.sysroot, |sys| prepare::run(&opts, sys))?;
    rootstock_core::logger::stdout(&render_dry_run(&recorder, &outcome, &opts));
    Ok(())
}

/// What `--dry-run` prints: the counting change, then every operation
/// recorded, the plan's steps numbered with their purpose, then the state
/// file.
fn render_dry_run(recorded: &Recorder, o: &Outcome, opts: &prepare::Options) -> String {
    let mut s = String::new();
    if let Some(c) = &o.counting {
        s.push_str(&format!(
            "boot counting: {c} (in {})\n",
            counting::MarkerDir::new(&opts.sysroot).path().display()
        ));
    }
    let ops: Vec<&Op> = recorded.operations().collect();
    // The plan laid out is the last thing done but for letting go of the
    // markers' lock; what came before it (the lock, the counting changes,
    // a failed candidate's steps and their undoing) and after it is shown
    // unnumbered.
    let unlocks = ops.iter().rev().take_while(|op| matches!(op, Op::Unlock { .. })).count();
    let plan_end = ops.len() - unlocks;
    let plan_at = plan_end.saturating_sub(o.plan.len());
    let is_plan = ops[plan_at..plan_end].iter().zip(&o.plan).all(|(op, step)| **op == step.op);
    for (i, op) in ops.iter().enumerate() {
        match i.checked_sub(plan_at).and_then(|n| Some((n, o.plan.get(n)?))) {
            Some((n, step)) if is_plan => s.push_str(&format!("{:>2}. {step}\n", n + 1)),
            _ => s.push_str(&format!("    {op}\n")),
        }
    }
    s.push_str(&format!("\n# {}/rootstock/state:\n{}", opts.run.display(), o.state.render()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pid1::tests::{C1, C2, physical_root};
    use rootstock_core::testutil::TempDir;

    fn dry_run(sysroot: &Path, cmdline: &str, read_only: bool) -> String {
        let opts = prepare::Options {
            sysroot: sysroot.to_path_buf(),
            run: "/run".into(),
            args: KernelArgs::parse(cmdline).unwrap(),
            config: Config::default(),
            init: None,
            running_kver: None,
            carried: None,
            loader_counted: None,
        };
        let mut r = Recorder::new();
        if read_only {
            r = r.with_read_only(sysroot, true);
        }
        let outcome = prepare::run(&opts, &mut r).unwrap();
        render_dry_run(&r, &outcome, &opts)
    }

    #[test]
    fn dry_run_shows_the_counting_change_and_the_numbered_plan() {
        let t = TempDir::new();
        let s = t.path().join("sysroot");
        physical_root(&s);
        let s = s.display();
        let m = format!("{s}/ostree/rootstock");
        let text = dry_run(
            t.path().join("sysroot").as_path(),
            &format!("ostree=/ostree/boot.1/os/{C2}/0 rootstock.tries=3"),
            true,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..12],
            [
                format!("boot counting: create os-{C2}.0+02-01 (in {m})"),
                format!("    mount  none -> {s} [MS_REMOUNT|MS_BIND]"),
                format!("    mount  none -> {s} [MS_REMOUNT]"),
                format!("    mkdir  - -> {m} [0755]"),
                format!("    fsync  - -> {s}/ostree [directory]"),
                format!("    syncfs - -> {s}/ostree [filesystem]"),
                format!("    create - -> {m}/os-{C2}.0+02-01 [O_EXCL 0644]"),
                format!("    fsync  - -> {m} [directory]"),
                format!("    syncfs - -> {m} [filesystem]"),
                format!("    mount  none -> {s} [MS_REMOUNT|MS_RDONLY]"),
                " 1. mount  none -> / [MS_REC|MS_PRIVATE]  # make / recursively private".into(),
                format!(" 2. mkdir  - -> {s}.tmp [0755]  # create the staging directory"),
            ]
        );
        // The physical root is read-only: the /etc and /var binds are made writable.
        assert!(
            text.contains(&format!(
                " 7. mount  none -> {s}.tmp/etc [MS_REMOUNT|MS_BIND]  # make the /etc bind writable\n"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "11. mount  {s}.tmp -> {s} [MS_MOVE]  # move the new root onto the sysroot\n"
            )),
            "{text}"
        );
        assert!(text.contains("14. write  "), "{text}");
        assert!(text.ends_with(&format!("\n# /run/rootstock/state:\nrequested=ostree=/ostree/boot.1/os/{C2}/0\nselected=os/{C2}.0\nindex=0\nreason=default\ninit=/sbin/init\ncounting=indeterminate (2 left, 1 done)\n")), "{text}");
    }

    #[test]
    fn dry_run_without_counting_is_the_plan_alone() {
        let t = TempDir::new();
        physical_root(t.path());
        let text = dry_run(t.path(), &format!("ostree=/ostree/boot.1/os/{C1}/0"), false);
        assert!(text.starts_with(" 1. mount  none -> / [MS_REC|MS_PRIVATE]"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("    ")).count(), 0, "{text}");
    }
}
