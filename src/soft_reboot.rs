//! `rootstock prepare-soft-reboot`: the command line over
//! `rootstock_core::soft_reboot`.

use std::path::PathBuf;

use argh::FromArgs;

use rootstock_core::cmdline::DeploymentChoice;
use rootstock_core::config::Config;
use rootstock_core::plan;
use rootstock_core::seam::fake::Recorder;
use rootstock_core::seam::{Query, System};
use rootstock_core::soft_reboot::{self, Options, Prepared, Reset};

use crate::error::Error;

#[derive(FromArgs, Debug)]
/// Lay out a deployment at /run/nextroot for `systemctl soft-reboot` (a new
/// userspace on the running kernel), exactly as at boot; or, with --kexec,
/// load its own kernel for `systemctl kexec`.
#[argh(subcommand, name = "prepare-soft-reboot")]
pub struct SoftRebootArgs {
    /// the deployment: an index (0 = default), `rollback` or CHECKSUM.SERIAL
    /// (default: the default deployment)
    #[argh(positional)]
    deployment: Option<String>,
    /// load the deployment's kernel, initramfs and boot options with
    /// kexec_file_load (for `systemctl kexec`) instead of laying it out
    #[argh(switch)]
    kexec: bool,
    /// undo a prepared soft reboot (detach /run/nextroot)
    #[argh(switch)]
    reset: bool,
    /// print the plan and change nothing
    #[argh(switch)]
    dry_run: bool,
    /// where the physical root is mounted (default /sysroot)
    #[argh(option, default = "PathBuf::from(\"/sysroot\")")]
    sysroot: PathBuf,
    /// runtime directory (default /run)
    #[argh(option, default = "PathBuf::from(\"/run\")")]
    run_dir: PathBuf,
    /// where the new root is laid out (default /run/nextroot, where systemd
    /// looks)
    #[argh(option, default = "PathBuf::from(\"/run/nextroot\")")]
    nextroot: PathBuf,
    /// where the boot loader entries' kernels are (default /boot)
    #[argh(option, default = "PathBuf::from(\"/boot\")")]
    boot: PathBuf,
    /// config file to use instead of /etc/rootstock/rootstock.conf or
    /// /usr/lib/rootstock/rootstock.conf
    #[argh(option)]
    config: Option<PathBuf>,
    /// directory under which the default config files are looked up (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    config_root: PathBuf,
    /// the kernel command line, for rootstock.tries= (default /proc/cmdline)
    #[argh(option, default = "PathBuf::from(\"/proc/cmdline\")")]
    cmdline: PathBuf,
    /// the running kernel's release (default: uname -r)
    #[argh(option)]
    kernel_release: Option<String>,
}

pub fn run(a: SoftRebootArgs) -> Result<(), Error> {
    let request = match &a.deployment {
        None => None,
        Some(v) => {
            Some(DeploymentChoice::parse(v).ok_or_else(|| Error::BadDeploymentArg { value: v.clone() })?)
        }
    };
    let (config, _) = Config::load(&a.config_root, a.config.as_deref())?;
    let running = read_args(&a.cmdline);
    let opts = Options {
        sysroot: a.sysroot,
        run: a.run_dir,
        nextroot: a.nextroot,
        boot: a.boot,
        request,
        config,
        running_kver: a.kernel_release.unwrap_or_else(crate::mkinitramfs::running_kver),
        kexec: a.kexec,
        tries: running.as_ref().and_then(|r| r.tries),
        composefs: running.as_ref().and_then(|r| r.composefs),
        mountinfo: PathBuf::from("/proc/self/mountinfo"),
        rollback_from: None,
    };
    if !a.dry_run && !rootstock_core::prepare::is_mount_point(&opts.sysroot).unwrap_or(false) {
        return Err(Error::SysrootNotMounted { path: opts.sysroot });
    }
    let mut recorder = Recorder::new();
    let sys: &mut dyn System = if a.dry_run {
        let read_only = Query::ReadOnly { path: opts.sysroot.clone() };
        if rootstock_sys::Linux.query(&read_only).unwrap_or(false) {
            recorder = recorder.with_read_only(&opts.sysroot, true);
        }
        &mut recorder
    } else {
        &mut rootstock_sys::Linux
    };
    if a.reset {
        let said = match soft_reboot::reset(&opts, sys)? {
            Reset::Detached(at) => format!("{} detached: no soft reboot is prepared", at.display()),
            Reset::NothingPrepared => "no soft reboot was prepared: nothing changed".into(),
            Reset::NoLongerMounted(at) => format!(
                "the soft reboot prepared at {} is no longer mounted (entered or detached): \
                 its record removed, nothing else changed",
                at.display()
            ),
        };
        log::info!("{said}");
    } else {
        match soft_reboot::prepare(&opts, sys)? {
            Prepared::LaidOut { deployment, plan: steps, .. } => {
                if a.dry_run {
                    rootstock_core::logger::stdout(&plan::render(&steps));
                }
                log::info!(
                    "{}/{} (index {}) is laid out at {}: `systemctl soft-reboot` starts it",
                    deployment.stateroot,
                    deployment.id(),
                    deployment.index,
                    opts.nextroot.display(),
                );
            }
            Prepared::Kexec { deployment, image } => {
                log::info!(
                    "{}/{}: kernel {} loaded (options: {}): `systemctl kexec` boots it",
                    deployment.stateroot,
                    deployment.id(),
                    image.kernel.display(),
                    image.cmdline
                );
            }
        }
    }
    if a.dry_run {
        for line in recorder.lines() {
            log::debug!("{line}");
        }
    }
    Ok(())
}

/// The running kernel's command line (`rootstock.tries=`,
/// `ostree.prepare-root.composefs=`, `rootstock.rollback=`: a soft reboot
/// keeps it). One that cannot be read or parsed leaves the config's
/// values: it booted.
pub(crate) fn read_args(path: &std::path::Path) -> Option<rootstock_core::cmdline::KernelArgs> {
    use rootstock_core::confine;
    let not_read = |e: &dyn std::fmt::Display| {
        log::warn!("{}: {e}: its rootstock.* arguments are not read", path.display())
    };
    let bytes = confine::read_file(path, confine::SMALL_FILE_CAP).map_err(|e| not_read(&e)).ok()?;
    rootstock_core::cmdline::KernelArgs::parse(&String::from_utf8_lossy(&bytes))
        .map_err(|e| not_read(&e))
        .ok()
}
