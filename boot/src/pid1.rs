//! PID-1 mode: rootstock as `/init` of its own initramfs.
//!
//! Mount the API filesystems, log to `/dev/kmsg`, load the kernel modules the
//! hardware needs until the root device appears, mount it, lay out the
//! deployment exactly as `prepare-root` does, switch root and exec init.
//! PID 1 never exits and never panics: a failure prints one screen naming
//! the step, the path and the errno, then obeys `rootstock.on-failure`.

use std::convert::Infallible;
use std::ffi::{CString, OsString};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::mount::{MountFlags, MountPropagationFlags};

use crate::error::Error;
use crate::modload::ModuleLoader;
use crate::probe::{self, DeviceInfo, RootSpec};
use rootstock_core::cmdline::{KernelArgs, OnFailure, RootMode};
use rootstock_core::config::Config;
use rootstock_core::errno::Errno;
use rootstock_core::{logger, prepare, state};

/// Where the physical root is mounted in the initramfs.
pub const SYSROOT: &str = "/sysroot";
/// How long to wait for the root device without `rootstock.root-timeout=`.
pub const DEFAULT_ROOT_TIMEOUT: Duration = Duration::from_secs(30);
/// printk.devkmsg: on, off or ratelimit.
const DEVKMSG: &str = "/proc/sys/kernel/printk_devkmsg";
/// The API filesystems moved into the new root.
const API_MOUNTS: [&str; 4] = ["/dev", "/proc", "/sys", "/run"];

/// Whether to boot: only when this process is PID 1 *and* `/` is an
/// initramfs (rootfs is a ramfs or a tmpfs). PID 1 of a container, or an
/// init= on a disk, parses its command line like any other program.
pub fn is_initramfs_init() -> bool {
    rustix::process::getpid().is_init() && root_is_ram()
}

/// Is `/` a ramfs or tmpfs (the initramfs's rootfs)?
fn root_is_ram() -> bool {
    rustix::fs::statfs("/").is_ok_and(|s| is_ram_fs(s.f_type))
}

/// `f_type` is i64 with glibc and u64 with musl.
#[allow(clippy::unnecessary_cast)]
fn is_ram_fs(f_type: impl TryInto<i64>) -> bool {
    matches!(f_type.try_into(), Ok(RAMFS_MAGIC | TMPFS_MAGIC))
}

/// Entry point when the kernel started us as `/init`. Never returns.
pub fn main(argv: Vec<OsString>) -> ! {
    let started = Instant::now();
    // With panic=abort a panic in PID 1 would be a kernel panic with no
    // explanation; the hook shows one and then never returns.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("\nrootstock: internal error: {info}");
        stop_forever();
    }));
    // The kernel passes init the arguments it did not recognise.
    let init_args: Vec<OsString> = argv.into_iter().skip(1).collect();
    let mut on_failure = OnFailure::default();
    let err = match boot(&init_args, &mut on_failure, started) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    fail(&err, on_failure)
}

fn boot(init_args: &[OsString], on_failure: &mut OnFailure, started: Instant) -> Result<Infallible, Error> {
    early_mounts()?;
    // The kernel rate-limits userspace writes to /dev/kmsg (about ten per
    // five seconds) unless printk.devkmsg=on: lift that for our messages,
    // and give the booted system the setting back before switching root.
    // Fails harmlessly when the command line locked the setting.
    let devkmsg = std::fs::read_to_string(DEVKMSG).unwrap_or_default();
    let _ = std::fs::write(DEVKMSG, "on\n");
    logger::use_kmsg("/dev/kmsg");
    logger::init(false);
    let bytes = std::fs::read("/proc/cmdline")
        .map_err(|e| Error::ReadCmdline { path: "/proc/cmdline".into(), errno: Errno::from_io(&e) })?;
    let args = KernelArgs::parse(&String::from_utf8_lossy(&bytes))?;
    *on_failure = args.on_failure;
    logger::init(args.debug);
    for k in &args.unknown {
        log::warn!("ignoring unknown kernel argument {k}");
    }
    let (config, _) = Config::load(Path::new("/"), None)?;
    let root_arg = args.root.clone().ok_or(Error::NoRootArgument)?;
    let spec =
        RootSpec::parse(&root_arg).map_err(|message| Error::BadRootArgument { value: root_arg, message })?;
    let timeout =
        args.root_timeout_secs.map(|s| Duration::from_secs(s.into())).unwrap_or(DEFAULT_ROOT_TIMEOUT);
    let mut modules = ModuleLoader::open_running_kernel();
    let device = wait_for_root(&spec, timeout, &mut modules)?;
    mount_root(&device, &args, &mut modules)?;
    log::info!(
        "root {} mounted at {SYSROOT} after {} ms",
        device.path.display(),
        started.elapsed().as_millis()
    );
    let carried = state::read_carried(&args, Path::new(state::KEXEC_STATE));
    let opts = prepare::Options {
        carried,
        sysroot: SYSROOT.into(),
        run: "/run".into(),
        init: args.init.clone(),
        running_kver: Some(rustix::system::uname().release().to_string_lossy().into_owned()),
        args,
        config,
    };
    let outcome = prepare::run(&opts, &mut rootstock_sys::Linux, false)?;
    if let Some(k) = &outcome.kexec {
        log::warn!("kexec into {} after {} ms", k.kernel.display(), started.elapsed().as_millis());
        // Unmount cleanly first; a failure here is no reason not to kexec.
        let _ = rustix::mount::unmount(SYSROOT, rustix::mount::UnmountFlags::DETACH);
        let errno = rootstock_sys::reboot_into_kexec();
        return Err(Error::Kexec { kernel: k.kernel.clone(), errno });
    }
    log::info!("switching root to {} after {} ms", outcome.state.selected, started.elapsed().as_millis());
    if !devkmsg.is_empty() {
        let _ = std::fs::write(DEVKMSG, devkmsg);
    }
    switch_root(Path::new(SYSROOT), &outcome.state.init, init_args)
}

/// devtmpfs, proc, sysfs and a tmpfs on /run. Already mounted is fine (a
/// kernel with CONFIG_DEVTMPFS_MOUNT mounts /dev itself).
fn early_mounts() -> Result<(), Error> {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let mounts: [(&str, &str, MountFlags, &str); 4] = [
        ("devtmpfs", "/dev", MountFlags::NOSUID, "mode=0755"),
        ("proc", "/proc", nosuid_nodev_noexec, ""),
        ("sysfs", "/sys", nosuid_nodev_noexec, ""),
        ("tmpfs", "/run", MountFlags::NOSUID | MountFlags::NODEV, "mode=0755"),
    ];
    for (fstype, path, flags, data) in mounts {
        let early = |errno| Error::EarlyMount { fstype, path, errno };
        std::fs::create_dir_all(path).map_err(|e| early(Errno::from_io(&e)))?;
        let data = CString::new(data).map_err(|_| early(Errno::INVAL))?;
        match rustix::mount::mount(fstype, path, fstype, flags, data.as_c_str()) {
            Ok(()) => {}
            // EBUSY: already mounted there (devtmpfs.mount=1).
            Err(rustix::io::Errno::BUSY) => {}
            Err(e) => return Err(early(e.into())),
        }
    }
    Ok(())
}

/// Load modules for the devices present, look for the root device, repeat
/// until it appears or `timeout` passes.
fn wait_for_root(
    spec: &RootSpec,
    timeout: Duration,
    modules: &mut ModuleLoader,
) -> Result<DeviceInfo, Error> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(5);
    loop {
        modules.load_for_devices(Path::new("/sys/devices"));
        let devices = probe::scan_block_devices(Path::new("/sys/class/block"), Path::new("/dev"));
        if let Some(d) = devices.iter().find(|d| spec.matches(d)) {
            log::info!("found root device {} after {} ms", d.path.display(), start.elapsed().as_millis());
            return Ok(d.clone());
        }
        if start.elapsed() >= timeout {
            return Err(Error::RootNotFound {
                spec: spec.to_string(),
                waited_secs: timeout.as_secs(),
                seen: devices.iter().map(describe_device).collect(),
                modules: modules.loaded().to_vec(),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

fn describe_device(d: &DeviceInfo) -> String {
    let mut s = d.path.display().to_string();
    if let Some(sb) = &d.superblock {
        s.push_str(&format!(" TYPE={}", sb.fstype.name()));
        if let Some(u) = &sb.uuid {
            s.push_str(&format!(" UUID={u}"));
        }
        if let Some(l) = &sb.label {
            s.push_str(&format!(" LABEL={l}"));
        }
    }
    if let Some(p) = &d.partuuid {
        s.push_str(&format!(" PARTUUID={p}"));
    }
    if let Some(p) = &d.partlabel {
        s.push_str(&format!(" PARTLABEL={p}"));
    }
    s
}

fn mount_root(device: &DeviceInfo, args: &KernelArgs, modules: &mut ModuleLoader) -> Result<(), Error> {
    let fstype = match (&args.rootfstype, &device.superblock) {
        (Some(t), _) => t.clone(),
        (None, Some(sb)) => sb.fstype.name().to_string(),
        (None, None) => return Err(Error::UnknownRootFilesystem { device: device.path.clone() }),
    };
    modules.load_named(&fstype);
    // The kernel's default is read-only unless `rw` is given.
    let mut flags = MountFlags::empty();
    if args.root_mode != Some(RootMode::ReadWrite) {
        flags |= MountFlags::RDONLY;
    }
    let data = args.rootflags.clone().unwrap_or_default();
    let mount_err = |errno| Error::MountRoot {
        device: device.path.clone(),
        fstype: fstype.clone(),
        options: data.clone(),
        errno,
    };
    std::fs::create_dir_all(SYSROOT).map_err(|e| mount_err(Errno::from_io(&e)))?;
    let cdata = CString::new(data.clone()).map_err(|_| mount_err(Errno::INVAL))?;
    rustix::mount::mount(&device.path, SYSROOT, fstype.as_str(), flags, cdata.as_c_str())
        .map_err(|e| mount_err(e.into()))
}

/// Move the API filesystems into the new root, free the initramfs, make the
/// new root `/` (MS_MOVE + chroot: pivot_root is refused on the initramfs)
/// and exec init.
fn switch_root(new_root: &Path, init: &str, init_args: &[OsString]) -> Result<Infallible, Error> {
    let step = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |errno: Errno| Error::SwitchRoot { step, path, errno }
    };
    rustix::fs::sync();
    // A shared / would propagate the moves; prepare made it private already,
    // but the API mounts came after.
    rustix::mount::mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)
        .map_err(|e| step("make / private", Path::new("/"))(e.into()))?;
    for m in API_MOUNTS {
        let target = new_root.join(m.trim_start_matches('/'));
        rustix::mount::mount_move(m, &target)
            .map_err(|e| step("move an API filesystem", &target)(e.into()))?;
    }
    std::env::set_current_dir(new_root).map_err(|e| step("chdir to the new root", new_root)(e.into()))?;
    free_initramfs();
    rustix::mount::mount_move(".", "/").map_err(|e| step("move the new root onto /", new_root)(e.into()))?;
    rustix::process::chroot(".").map_err(|e| step("chroot into the new root", new_root)(e.into()))?;
    std::env::set_current_dir("/").map_err(|e| step("chdir to /", Path::new("/"))(e.into()))?;
    reopen_console();
    let err = std::process::Command::new(init).arg0(init).args(init_args).exec();
    Err(Error::ExecInit { path: PathBuf::from(init), errno: Errno::from_io(&err) })
}

const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Delete the initramfs's files to give their memory back, without crossing
/// into other mounts. Only ever on a ramfs/tmpfs root: never on a disk.
fn free_initramfs() {
    if !root_is_ram() {
        log::warn!("/ is not a ramfs or tmpfs: not deleting the initramfs");
        return;
    }
    match std::fs::symlink_metadata("/") {
        Ok(m) => remove_children(Path::new("/"), m.dev()),
        Err(e) => log::warn!("cannot stat /: {e}"),
    }
}

fn remove_children(dir: &Path, dev: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.dev() != dev {
            continue; // another mount: the new root, or an API filesystem
        }
        let removed = if meta.is_dir() {
            remove_children(&path, dev);
            std::fs::remove_dir(&path)
        } else {
            std::fs::remove_file(&path)
        };
        // A directory that still holds a mount point (EBUSY/ENOTEMPTY) stays.
        if let Err(e) = removed {
            log::debug!("not removing {}: {e}", path.display());
        }
    }
}

/// Make /dev/console (in the new root) stdin, stdout and stderr of init.
fn reopen_console() {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/console") {
        Ok(c) => {
            // A failure leaves the old descriptors, which still work.
            let _ = rustix::stdio::dup2_stdin(&c);
            let _ = rustix::stdio::dup2_stdout(&c);
            let _ = rustix::stdio::dup2_stderr(&c);
        }
        Err(e) => log::warn!("cannot open /dev/console: {e}"),
    }
}

/// Show the failure, then do what `rootstock.on-failure` says. Never returns.
fn fail(err: &Error, action: OnFailure) -> ! {
    let shell = Path::new("/bin/sh");
    let next = match action {
        OnFailure::Shell if shell.exists() => "starting an emergency shell (/bin/sh); exit it to reboot",
        OnFailure::Shell => {
            "no shell in this initramfs: halting (rootstock.on-failure=reboot|poweroff to change)"
        }
        OnFailure::Reboot => "rebooting",
        OnFailure::Poweroff => "powering off",
        OnFailure::Halt => "halting",
    };
    let screen = format!(
        "\n======================== rootstock: boot failed ========================\n\
         {err}\n\n\
         then: {next}\n\
         ==========================================================================\n"
    );
    log::error!("{err}");
    eprint!("{screen}");
    rustix::fs::sync();
    match action {
        OnFailure::Shell if shell.exists() => {
            match rootstock_sys::run_shell(shell) {
                Ok(status) => log::info!("emergency shell ended ({status}): rebooting"),
                Err(e) => log::error!("cannot start the emergency shell {}: {e}: rebooting", shell.display()),
            }
            let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
        }
        OnFailure::Shell | OnFailure::Halt => {}
        OnFailure::Reboot => {
            let _ = rustix::system::reboot(rustix::system::RebootCommand::Restart);
        }
        OnFailure::Poweroff => {
            let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
        }
    }
    stop_forever()
}

fn stop_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
