//! The command line of the boot program: PID-1 mode when the kernel started
//! it as `/init`, else `prepare-root`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use rootstock_core::cmdline::KernelArgs;
use rootstock_core::config::Config;
use rootstock_core::errno::Errno;
use rootstock_core::{counting, logger, plan, prepare, state};

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
    let mut strs = Vec::with_capacity(argv.len());
    for a in &argv {
        match a.to_str() {
            Some(s) => strs.push(s),
            None => {
                eprintln!("rootstock: argument {} is not valid UTF-8", a.to_string_lossy());
                return 2;
            }
        }
    }
    let name =
        strs.first().map(|s| Path::new(s).file_name().and_then(|n| n.to_str()).unwrap_or("rootstock-boot"));
    let top = match Top::from_args(&[name.unwrap_or("rootstock-boot")], strs.get(1..).unwrap_or(&[])) {
        Ok(t) => t,
        Err(e) => {
            // --help exits 0 with the text on stdout; errors go to stderr.
            if e.status.is_ok() {
                println!("{}", e.output);
                return 0;
            }
            eprintln!("{}", e.output);
            return 2;
        }
    };
    let result = match top.cmd {
        Cmd::PrepareRoot(a) => prepare_root(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn read_cmdline(path: &Path) -> Result<KernelArgs, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::ReadCmdline { path: path.into(), errno: Errno::from_io(&e) })?;
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
    if let Some(p) = used {
        log::debug!("config from {}", p.display());
    }
    std::fs::metadata(&a.sysroot)
        .map_err(|e| Error::SysrootMissing { path: a.sysroot.clone(), errno: Errno::from_io(&e) })?;
    if !a.dry_run && !prepare::is_mount_point(&a.sysroot).unwrap_or(false) {
        return Err(Error::SysrootNotMounted { path: a.sysroot });
    }
    let carried = state::read_carried(&args, &a.kexec_state);
    let opts = prepare::Options {
        sysroot: a.sysroot,
        run: a.run_dir,
        args,
        config,
        init: None,
        running_kver: None,
        carried,
    };
    let outcome = prepare::run(&opts, &mut rootstock_sys::Linux, a.dry_run)?;
    if a.dry_run {
        if let Some(c) = &outcome.counting {
            println!("boot counting: {c} (in {})", counting::MarkerDir::new(&opts.sysroot).path().display());
        }
        if let Some(k) = &outcome.kexec {
            println!("kexec: {} initrd {:?} cmdline {:?}", k.kernel.display(), k.initrd, k.cmdline);
        }
        print!("{}", plan::render(&outcome.plan));
        print!("\n# {}/rootstock/state:\n{}", opts.run.display(), outcome.state.render());
    }
    Ok(())
}
