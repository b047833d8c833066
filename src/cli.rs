//! The command line of the `rootstock` binary.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::cmdline::KernelArgs;
use crate::config::Config;
use crate::errno::Errno;
use crate::error::Error;
use crate::{counting, layout, logger, mkinitramfs, plan, prepare, state, status, sys};

#[derive(FromArgs, Debug)]
/// rootstock: find the OSTree deployment to boot and lay out its mounts.
struct Top {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum Cmd {
    PrepareRoot(PrepareRootArgs),
    Status(StatusArgs),
    Mkinitramfs(mkinitramfs::MkinitramfsArgs),
    Bless(BlessArgs),
}

#[derive(FromArgs, Debug)]
/// Record that the booted deployment is good (boot counting stops for it),
/// or with --bad that it must not be booted again while another can be.
#[argh(subcommand, name = "bless")]
struct BlessArgs {
    /// mark the booted deployment bad instead of good
    #[argh(switch)]
    bad: bool,
    /// where the physical root is mounted (default /sysroot)
    #[argh(option, default = "PathBuf::from(\"/sysroot\")")]
    sysroot: PathBuf,
    /// the running root, compared with each deployment (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    root: PathBuf,
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

#[derive(FromArgs, Debug)]
/// Show the deployments: which is default, rollback, booted.
#[argh(subcommand, name = "status")]
struct StatusArgs {
    /// where the physical root is mounted (default /sysroot)
    #[argh(option, default = "PathBuf::from(\"/sysroot\")")]
    sysroot: PathBuf,
    /// the running root, compared with each deployment (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    root: PathBuf,
    /// runtime directory holding rootstock/state (default /run)
    #[argh(option, default = "PathBuf::from(\"/run\")")]
    run_dir: PathBuf,
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
}

/// Run the command line; returns the process exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    // Started by the kernel as /init: boot. Its arguments are the kernel's
    // leftovers for init, not a rootstock command line.
    if rustix::process::getpid().is_init() {
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
    let name = strs.first().map(|s| Path::new(s).file_name().and_then(|n| n.to_str()).unwrap_or("rootstock"));
    let top = match Top::from_args(&[name.unwrap_or("rootstock")], strs.get(1..).unwrap_or(&[])) {
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
        Cmd::Status(a) => show_status(a),
        Cmd::Mkinitramfs(a) => mkinitramfs::run(a).map_err(Error::Mkinitramfs),
        Cmd::Bless(a) => bless(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            if matches!(e, Error::Usage(_)) { 2 } else { 1 }
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
    let outcome = prepare::run(&opts, &mut sys::Linux, a.dry_run)?;
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

fn bless(a: BlessArgs) -> Result<(), Error> {
    logger::init(false);
    let base = status::booted_base(&a.sysroot, &a.root)?
        .ok_or_else(|| Error::NotBooted { sysroot: a.sysroot.clone(), root: a.root.clone() })?;
    let dir = counting::MarkerDir::new(&a.sysroot);
    let files = dir.list().map_err(Error::Counting)?;
    let known: Vec<String> =
        layout::deployment_dirs(&a.sysroot)?.iter().map(|(s, id)| counting::base_name(s, id)).collect();
    let markers = counting::reduce(&files, &known);
    let mut changes = markers.repairs.clone();
    changes.extend(markers.bless(&base, !a.bad));
    counting::apply_writable(&a.sysroot, &dir, &changes).map_err(Error::Counting)?;
    let verdict = if a.bad { "bad" } else { "good" };
    match changes.last() {
        Some(c) => log::info!("{base} is now {verdict} ({c})"),
        None => log::info!("{base} was already {verdict}"),
    }
    Ok(())
}

fn show_status(a: StatusArgs) -> Result<(), Error> {
    logger::init(false);
    let s = status::gather(&a.sysroot, &a.root, &a.run_dir)?;
    if a.json {
        // Serialising plain structs of strings and numbers cannot fail.
        println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    } else {
        print!("{}", status::render(&s));
    }
    Ok(())
}
