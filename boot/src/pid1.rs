//! PID-1 mode: rootstock as `/init` of its own initramfs.
//!
//! Mount the API filesystems, log to `/dev/kmsg`, load the kernel modules the
//! hardware needs until the root device appears, mount it, lay out the
//! deployment exactly as `prepare-root` does, switch root and exec init.
//! PID 1 never exits and never panics: a failure prints one screen naming
//! the step, the path and the errno, then obeys `rootstock.on-failure`.
//!
//! [`boot`] is the whole sequence over a [`System`], a [`Clock`] and the
//! paths of an [`Env`]: every side effect goes through the seam, every wait
//! through the clock, every file read is at a path of the `Env`, so tests
//! run it against a recorder, a clock that never really waits and a fake
//! `/sys`, `/dev` and sysroot.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::modload::ModuleLoader;
use crate::probe::{self, DeviceInfo, RootSpec};
use rootstock_core::cmdline::{KernelArgs, OnFailure, RootMode};
use rootstock_core::composefs::Tristate;
use rootstock_core::config::Config;
use rootstock_core::confine;
use rootstock_core::errno::Errno;
use rootstock_core::seam::{Clock, MountFlags, Op, Query, Reboot, System};
use rootstock_core::{layout, logger, prepare, state};

/// How long to wait for the root device without `rootstock.root-timeout=`.
pub const DEFAULT_ROOT_TIMEOUT: Duration = Duration::from_secs(30);
/// The console of the new root, once switched into it.
const CONSOLE: &str = "/dev/console";

/// Where PID 1 finds and puts things. [`Env::real`] in the initramfs; tests
/// point each path into a directory of their own.
#[derive(Debug, Clone)]
pub struct Env {
    /// The initramfs's root (`/`): its config, deleted after switching root.
    pub root: PathBuf,
    /// Where devtmpfs, proc, sysfs and the tmpfs for /run are mounted.
    pub dev: PathBuf,
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub run: PathBuf,
    /// The kernel command line (`/proc/cmdline`).
    pub cmdline: PathBuf,
    /// printk.devkmsg (`/proc/sys/kernel/printk_devkmsg`): on, off or ratelimit.
    pub devkmsg: PathBuf,
    /// Where log records go once devtmpfs is mounted (`/dev/kmsg`).
    pub kmsg: PathBuf,
    /// Where the physical root is mounted (`/sysroot`).
    pub sysroot: PathBuf,
    /// The running kernel's release (`uname -r`).
    pub kver: String,
    /// The modules of the running kernel (`/lib/modules/$kver`).
    pub modules: PathBuf,
    /// After a kexec, the first pass's state (`/rootstock-kexec-state`).
    pub kexec_state: PathBuf,
    /// The emergency shell (`/bin/sh`), when the initramfs has one.
    pub shell: PathBuf,
}

impl Env {
    /// The initramfs as the kernel started it.
    pub fn real() -> Env {
        let kver = rustix::system::uname().release().to_string_lossy().into_owned();
        Env {
            root: "/".into(),
            dev: "/dev".into(),
            proc: "/proc".into(),
            sys: "/sys".into(),
            run: "/run".into(),
            cmdline: "/proc/cmdline".into(),
            devkmsg: "/proc/sys/kernel/printk_devkmsg".into(),
            kmsg: "/dev/kmsg".into(),
            sysroot: "/sysroot".into(),
            modules: Path::new("/lib/modules").join(&kver),
            kver,
            kexec_state: state::KEXEC_STATE.into(),
            shell: "/bin/sh".into(),
        }
    }
}

/// What [`boot`] handed the machine to. With the kernel, neither returns:
/// only a recorder gets here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Exec'd this init in the new root.
    Init(PathBuf),
    /// Rebooted into this kernel, loaded with kexec.
    Kexec(PathBuf),
}

/// Whether to boot: only when this process is PID 1 *and* `/` is an
/// initramfs (rootfs is a ramfs or a tmpfs). PID 1 of a container, or an
/// init= on a disk, parses its command line like any other program.
pub fn is_initramfs_init() -> bool {
    rustix::process::getpid().is_init()
        && rootstock_sys::Linux.query(&Query::RamFs { path: "/".into() }).unwrap_or(false)
}

/// Entry point when the kernel started us as `/init`. Never returns.
pub fn main(argv: Vec<OsString>) -> ! {
    // With panic=abort a panic in PID 1 would be a kernel panic with no
    // explanation; the hook shows one and then never returns.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("\nrootstock: internal error: {info}");
        stop_forever();
    }));
    // The kernel passes init the arguments it did not recognise.
    let init_args: Vec<OsString> = argv.into_iter().skip(1).collect();
    let env = Env::real();
    let mut linux = rootstock_sys::Linux;
    let mut on_failure = OnFailure::default();
    let err = match boot(&mut linux, &rootstock_sys::Linux, &env, &init_args, &mut on_failure) {
        Err(e) => e,
        // exec and reboot return only when they fail.
        Ok(Handover::Init(path)) => Error::ExecInit { path, errno: Errno::IO },
        Ok(Handover::Kexec(kernel)) => Error::Kexec { kernel, errno: Errno::IO },
    };
    fail(&mut linux, &env, &err, on_failure);
    stop_forever()
}

/// The whole boot: early mounts → modules → root → layout → switch root →
/// exec init (or kexec). `on_failure` is set from the command line as soon
/// as it is read.
pub fn boot(
    sys: &mut dyn System,
    clock: &dyn Clock,
    env: &Env,
    init_args: &[OsString],
    on_failure: &mut OnFailure,
) -> Result<Handover, Error> {
    let started = clock.now();
    // What the initramfs is, taken while `/` surely is it: freeing it
    // later deletes only if `/` still is this very directory.
    let initramfs = match std::fs::symlink_metadata(&env.root) {
        Ok(m) => Some((m.dev(), m.ino())),
        Err(e) => {
            log::warn!("cannot stat {}: {e}: the initramfs will not be freed", env.root.display());
            None
        }
    };
    let mut steps = Steps::new(clock);
    steps.done("exec: PID 1 running");
    early_mounts(sys, env)?;
    steps.done("early mounts");
    // The kernel rate-limits userspace writes to /dev/kmsg (about ten per
    // five seconds) unless printk.devkmsg=on: lift that for our messages,
    // and give the booted system the setting back before switching root.
    // Fails harmlessly when the command line locked the setting.
    let devkmsg = std::fs::read_to_string(&env.devkmsg).unwrap_or_default();
    let _ = sys.execute(&Op::WriteKnob { path: env.devkmsg.clone(), contents: "on\n".into() });
    if let Some(kmsg) = env.kmsg.to_str() {
        logger::use_kmsg(kmsg);
    }
    logger::init(false);
    let bytes = confine::read_file(&env.cmdline, confine::SMALL_FILE_CAP).map_err(Error::read_cmdline)?;
    let args = KernelArgs::parse(&String::from_utf8_lossy(&bytes))?;
    *on_failure = args.on_failure;
    logger::init(args.debug);
    steps.logger_ready();
    for k in &args.unknown {
        log::warn!("ignoring unknown kernel argument {k}");
    }
    let (config, _) = Config::load(&env.root, None)?;
    let root_arg = args.root.clone().ok_or(Error::NoRootArgument)?;
    let spec =
        RootSpec::parse(&root_arg).map_err(|message| Error::BadRootArgument { value: root_arg, message })?;
    let timeout =
        args.root_timeout_secs.map(|s| Duration::from_secs(s.into())).unwrap_or(DEFAULT_ROOT_TIMEOUT);
    steps.done("command line and config");
    let modules = ModuleLoader::open(&env.modules, started);
    steps.done("module index");
    let mut cx = Boot { sys, clock, env, modules, steps, initramfs };
    let device = wait_for_root(&mut cx, &spec, timeout)?;
    mount_root(&mut cx, &device, &args)?;
    log::info!(
        "root {} mounted at {} after {} ms",
        device.path.display(),
        env.sysroot.display(),
        cx.ms_since(started)
    );
    // Overlayfs (a transient /etc, a hotfixed /usr, composefs) and EROFS
    // and loop devices (composefs) are modules in the module sets, and no
    // device asks for them: loaded when a plan may need them.
    let composefs = config.composefs.policy.with_kernel_arg(args.composefs).enabled != Tristate::No;
    if config.etc.transient || composefs || layout::any_hotfix(&env.sysroot) {
        cx.modules.load_named(cx.sys, "overlay");
    }
    if composefs {
        cx.modules.load_named(cx.sys, "erofs");
        cx.modules.load_named(cx.sys, "loop");
    }
    let carried = state::read_carried(args.kexeced, &env.kexec_state);
    let opts = prepare::Options {
        loader_counted: loader_counted(&mut cx, &env.sys),
        carried,
        sysroot: env.sysroot.clone(),
        run: env.run.clone(),
        init: layout::deployment_init(args.init.as_deref()).map(str::to_string),
        running_kver: Some(env.kver.clone()),
        args,
        config,
    };
    let outcome = rootstock_core::lock::at_boot(cx.sys, &opts.sysroot, |sys| prepare::run(&opts, sys))?;
    cx.steps.done("selection and layout");
    if let Some(k) = &outcome.kexec {
        log::warn!("kexec into {} after {} ms", k.kernel.display(), cx.ms_since(started));
        // Unmount cleanly first; a failure here is no reason not to kexec.
        let _ = cx.sys.execute(&Op::Detach { target: env.sysroot.clone() });
        let _ = cx.sys.execute(&Op::Sync);
        cx.sys
            .execute(&Op::Reboot(Reboot::Kexec))
            .map_err(|errno| Error::Kexec { kernel: k.kernel.clone(), errno })?;
        return Ok(Handover::Kexec(k.kernel.clone()));
    }
    log::info!("switching root to {} after {} ms", outcome.state.selected, cx.ms_since(started));
    if !devkmsg.is_empty() {
        let _ = cx.sys.execute(&Op::WriteKnob { path: env.devkmsg.clone(), contents: devkmsg });
    }
    switch_root(&mut cx, &outcome.state.init, init_args)
}

/// What the steps from the root device on share: the seam, the clock, the
/// paths, the module loader, the step log, and what the initramfs is
/// (device and inode of its `/`, taken when PID 1 started).
struct Boot<'a> {
    sys: &'a mut dyn System,
    clock: &'a dyn Clock,
    env: &'a Env,
    modules: ModuleLoader,
    steps: Steps<'a>,
    initramfs: Option<(u64, u64)>,
}

impl Boot<'_> {
    /// Milliseconds on the clock since `t`.
    fn ms_since(&self, t: Instant) -> u128 {
        self.clock.now().saturating_duration_since(t).as_millis()
    }
}

/// The debug log's step times (`rootstock.debug`): how long each step of
/// the boot took and when it ended, in ms since PID 1 started (the kernel's
/// timestamp on the line places it on the boot clock). Steps before the
/// command line says whether to log them are kept until it does.
struct Steps<'a> {
    clock: &'a dyn Clock,
    start: Instant,
    last: Instant,
    early: Vec<String>,
    ready: bool,
}

impl<'a> Steps<'a> {
    fn new(clock: &'a dyn Clock) -> Steps<'a> {
        let start = clock.now();
        Steps { clock, start, last: start, early: Vec::new(), ready: false }
    }

    fn done(&mut self, what: &str) {
        let now = self.clock.now();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let line = format!("step {what}: {:.2} ms (at {:.2} ms)", ms(now - self.last), ms(now - self.start));
        self.last = now;
        if self.ready {
            log::debug!("{line}");
        } else {
            self.early.push(line);
        }
    }

    /// The logger knows its level now: log what was kept.
    fn logger_ready(&mut self) {
        self.ready = true;
        for line in self.early.drain(..) {
            log::debug!("{line}");
        }
    }
}

/// The entry systemd-boot counts this boot (`LoaderBootCountPath`), from
/// efivarfs, mounted for it on a UEFI machine (its module loaded first: a
/// module on Debian's kernels). Best effort: without it (no UEFI, no
/// efivarfs) rootstock counts as before. A mount that was there before is
/// left; the one made here is detached after the read.
fn loader_counted(cx: &mut Boot, sysfs: &Path) -> Option<String> {
    if !sysfs.join("firmware/efi").is_dir() {
        return None;
    }
    cx.modules.load_named(cx.sys, "efivarfs");
    let sys = &mut *cx.sys;
    let efivars = sysfs.join("firmware/efi/efivars");
    let mount = Op::Mount {
        source: "efivarfs".into(),
        target: efivars.clone(),
        fstype: "efivarfs".into(),
        flags: MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY,
        data: String::new(),
    };
    let made = match sys.execute(&mount) {
        Ok(()) => true,
        // EBUSY: mounted already (not ours to detach). Anything else
        // (ENODEV: no efivarfs in this kernel): the variable is not read,
        // nothing else changes.
        Err(Errno::BUSY) => false,
        Err(e) => {
            log::debug!("efivarfs at {}: {e}: systemd-boot's counter not read", efivars.display());
            return None;
        }
    };
    let entry = rootstock_core::counting::loader_counted_entry(&efivars);
    // Detached again: the booted system mounts efivarfs as it wants it
    // (read-write: systemd-bless-boot and bootctl write variables).
    if made && let Err(e) = sys.execute(&Op::Detach { target: efivars.clone() }) {
        log::warn!("detaching efivarfs from {}: {e}", efivars.display());
    }
    if let Some(e) = &entry {
        log::info!("systemd-boot counts this boot ({e})");
    }
    entry
}

/// devtmpfs, proc, sysfs and a tmpfs on /run. Already mounted is fine (a
/// kernel with CONFIG_DEVTMPFS_MOUNT mounts /dev itself).
fn early_mounts(sys: &mut dyn System, env: &Env) -> Result<(), Error> {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    let mounts: [(&'static str, &Path, MountFlags, &str); 4] = [
        ("devtmpfs", &env.dev, MountFlags::NOSUID, "mode=0755"),
        ("proc", &env.proc, nosuid_nodev_noexec, ""),
        ("sysfs", &env.sys, nosuid_nodev_noexec, ""),
        ("tmpfs", &env.run, MountFlags::NOSUID | MountFlags::NODEV, "mode=0755"),
    ];
    for (fstype, path, flags, data) in mounts {
        let early = |errno| Error::EarlyMount { fstype, path: path.to_path_buf(), errno };
        sys.execute(&Op::Mkdir { path: path.to_path_buf() }).map_err(early)?;
        let mount = Op::Mount {
            source: fstype.into(),
            target: path.to_path_buf(),
            fstype: fstype.into(),
            flags,
            data: data.into(),
        };
        match sys.execute(&mount) {
            // EBUSY: already mounted there (devtmpfs.mount=1).
            Ok(()) | Err(Errno::BUSY) => {}
            Err(e) => return Err(early(e)),
        }
    }
    Ok(())
}

/// After loading a device's drivers, the next device elsewhere waits until
/// the kernel has announced nothing new for this long (its disks appear
/// asynchronously, and may be the root)...
const SETTLE_QUIET: Duration = Duration::from_millis(200);
/// ... but no longer than this after the load. Devices below the ones
/// loaded (a controller's disks) do not wait.
const SETTLE_MAX: Duration = Duration::from_secs(1);
/// Block devices are looked at again at least this often, even when the
/// kernel announced nothing.
const RESCAN: Duration = Duration::from_millis(250);
/// When the kernel announces something, PID 1 looks below the devices whose
/// drivers it loaded (where what they bring appears), and at all of
/// `/sys/devices` no more often than this.
const FULL_DISCOVERY: Duration = Duration::from_secs(1);

/// Find the root device, root first: look at the devices the kernel
/// announces (again whenever `/sys/kernel/uevent_seqnum` moves, so new ones
/// are seen until nothing changes: below the devices loaded, and everywhere
/// at most every [`FULL_DISCOVERY`]), load one device's drivers at a time in
/// the order [`ModuleLoader`] gives, look for the root after each, and stop
/// loading as soon as it is there. Gives up after `timeout`.
fn wait_for_root(cx: &mut Boot, spec: &RootSpec, timeout: Duration) -> Result<DeviceInfo, Error> {
    let (env, clock) = (cx.env, cx.clock);
    let since = |t: Instant| clock.now().saturating_duration_since(t);
    let start = clock.now();
    let seqnum_file = env.sys.join("kernel/uevent_seqnum");
    let sys_devices = env.sys.join("devices");
    let mut seqnum: Option<String> = None;
    let mut last_change = start;
    let mut last_scan: Option<Instant> = None;
    let mut last_full: Option<Instant> = None;
    // Whether the kernel announced something since the last full look.
    let mut unseen = true;
    let mut last_load: Option<Instant> = None;
    let mut devices = Vec::new();
    let mut delay = Duration::from_millis(5);
    loop {
        // Read before looking, so that what appears meanwhile is seen next time.
        let now_seqnum = std::fs::read_to_string(&seqnum_file).ok();
        let changed = now_seqnum.is_none() || now_seqnum != seqnum;
        if changed {
            seqnum = now_seqnum;
            last_change = clock.now();
            unseen = true;
            let queued = cx.modules.discover_below_done();
            cx.steps
                .done(&format!("sysfs scan below the devices loaded: {queued} devices queued for drivers"));
        }
        // What appeared elsewhere is seen within a second.
        if unseen && last_full.is_none_or(|t| since(t) >= FULL_DISCOVERY) {
            let queued = cx.modules.discover(&sys_devices);
            cx.steps.done(&format!("sysfs scan: {queued} devices queued for drivers"));
            last_full = Some(clock.now());
            unseen = false;
        }
        if changed || last_scan.is_none_or(|t| since(t) >= RESCAN) {
            devices = probe::scan_block_devices(&env.sys.join("class/block"), &env.dev);
            last_scan = Some(clock.now());
            cx.steps.done(&format!("probe: {} block devices", devices.len()));
            if let Some(d) = devices.iter().find(|d| spec.matches(d)) {
                log::info!("found root device {} after {} ms", d.path.display(), since(start).as_millis());
                cx.modules.stop(&format!("the root device {} is there", d.path.display()));
                return Ok(d.clone());
            }
        }
        let settled = last_load.is_none_or(|t| since(last_change) >= SETTLE_QUIET || since(t) >= SETTLE_MAX);
        if cx.modules.waiting() > 0
            && (settled || cx.modules.next_is_below_done())
            && let Some(device) = cx.modules.load_next(cx.sys)
        {
            cx.steps.done(&format!("drivers of {}", device.path.display()));
            // Settling waits for what a bound driver brings. A driver that
            // did not take the device (its probe found nothing there: an
            // empty virtio-mmio slot of QEMU's arm64 board) brings nothing:
            // the next device need not wait. (A driver that probes
            // asynchronously may bind later; then one more driver is
            // loaded early, which costs milliseconds, not the root.)
            if device.path.join("driver").exists() {
                last_load = Some(clock.now());
            } else {
                log::debug!(
                    "{}: no driver took it: not waiting for devices behind it",
                    device.path.display()
                );
            }
            delay = Duration::from_millis(5);
            continue;
        }
        if since(start) >= timeout {
            cx.modules.stop(&format!("no root device {spec} within {} s", timeout.as_secs()));
            return Err(Error::RootNotFound {
                spec: spec.to_string(),
                waited_secs: timeout.as_secs(),
                seen: devices.iter().map(describe_device).collect(),
                modules: cx.modules.loaded().to_vec(),
            });
        }
        clock.sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(50));
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

fn mount_root(cx: &mut Boot, device: &DeviceInfo, args: &KernelArgs) -> Result<(), Error> {
    let env = cx.env;
    let fstype = match (&args.rootfstype, &device.superblock) {
        (Some(t), _) => t.clone(),
        (None, Some(sb)) => sb.fstype.name().to_string(),
        (None, None) => return Err(Error::UnknownRootFilesystem { device: device.path.clone() }),
    };
    let loaded = cx.modules.load_named(cx.sys, &fstype);
    cx.steps.done(&format!("{fstype} modules: {loaded} loaded"));
    // The kernel's default is read-only unless `rw` is given.
    let mut flags = MountFlags::empty();
    if args.root_mode != Some(RootMode::ReadWrite) {
        flags |= MountFlags::RDONLY;
    }
    let data = args.rootflags.clone().unwrap_or_default();
    let mount_err = |errno| Error::MountRoot {
        device: device.path.clone(),
        target: env.sysroot.clone(),
        fstype: fstype.clone(),
        options: data.clone(),
        errno,
    };
    cx.sys.execute(&Op::Mkdir { path: env.sysroot.clone() }).map_err(mount_err)?;
    let mount = Op::Mount {
        source: device.path.clone(),
        target: env.sysroot.clone(),
        fstype: fstype.clone(),
        flags,
        data: data.clone(),
    };
    cx.sys.execute(&mount).map_err(mount_err)?;
    cx.steps.done("mount the root");
    Ok(())
}

/// Move the API filesystems into the new root, free the initramfs, make the
/// new root `/` (MS_MOVE + chroot: pivot_root is refused on the initramfs)
/// and exec init.
fn switch_root(cx: &mut Boot, init: &str, init_args: &[OsString]) -> Result<Handover, Error> {
    let (env, sys) = (cx.env, &mut *cx.sys);
    let new_root = &env.sysroot;
    let step = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |errno: Errno| Error::SwitchRoot { step, path, errno }
    };
    let _ = sys.execute(&Op::Sync);
    // A shared / would propagate the moves; prepare made it private already,
    // but the API mounts came after.
    sys.execute(&Op::MakeRprivate { target: env.root.clone() }).map_err(step("make / private", &env.root))?;
    for (mount, name) in [(&env.dev, "dev"), (&env.proc, "proc"), (&env.sys, "sys"), (&env.run, "run")] {
        let target = new_root.join(name);
        sys.execute(&Op::Move { source: mount.clone(), target: target.clone() })
            .map_err(step("move an API filesystem", &target))?;
    }
    sys.execute(&Op::Chdir { path: new_root.clone() }).map_err(step("chdir to the new root", new_root))?;
    cx.steps.done("move the API filesystems");
    // Only if `/` still is the initramfs PID 1 started on (device and
    // inode); see Op::EmptyRamfs.
    if let Some((dev, ino)) = cx.initramfs
        && let Err(e) = sys.execute(&Op::EmptyRamfs { root: env.root.clone(), dev, ino })
    {
        log::warn!("cannot free the initramfs {}: {e}", env.root.display());
    }
    cx.steps.done("free the initramfs");
    sys.execute(&Op::Move { source: ".".into(), target: env.root.clone() })
        .map_err(step("move the new root onto /", new_root))?;
    sys.execute(&Op::Chroot { path: ".".into() }).map_err(step("chroot into the new root", new_root))?;
    sys.execute(&Op::Chdir { path: "/".into() }).map_err(step("chdir to /", Path::new("/")))?;
    // Init's stdin, stdout and stderr; a failure leaves the old descriptors,
    // which still work.
    if let Err(e) = sys.execute(&Op::Console { path: CONSOLE.into() }) {
        log::warn!("cannot open {CONSOLE}: {e}");
    }
    let init = PathBuf::from(init);
    cx.steps.done(&format!("switch root; exec {}", init.display()));
    sys.execute(&Op::Exec { path: init.clone(), args: init_args.to_vec() })
        .map_err(|errno| Error::ExecInit { path: init.clone(), errno })?;
    Ok(Handover::Init(init))
}

/// Show the failure on the console, then do what `rootstock.on-failure`
/// says. Returns when all that is left is to stop (halt, or a reboot that
/// failed).
pub fn fail(sys: &mut dyn System, env: &Env, err: &Error, action: OnFailure) {
    let has_shell = env.shell.exists();
    let next = match action {
        OnFailure::Shell if has_shell => {
            format!("starting an emergency shell ({}); exit it to reboot", env.shell.display())
        }
        OnFailure::Shell => {
            "no shell in this initramfs: halting (rootstock.on-failure=reboot|poweroff to change)".into()
        }
        OnFailure::Reboot => "rebooting".into(),
        OnFailure::Poweroff => "powering off".into(),
        OnFailure::Halt => "halting".into(),
    };
    let screen = format!(
        "\n======================== rootstock: boot failed ========================\n\
         {err}\n\n\
         then: {next}\n\
         ==========================================================================\n"
    );
    log::error!("{err}");
    eprint!("{screen}");
    let _ = sys.execute(&Op::Sync);
    let reboot = match action {
        OnFailure::Shell if has_shell => {
            // The shell's end is logged with its exit status by the system.
            if let Err(e) = sys.execute(&Op::EmergencyShell { path: env.shell.clone() }) {
                log::error!("cannot start the emergency shell {}: {e}: rebooting", env.shell.display());
            }
            Some(Reboot::Restart)
        }
        OnFailure::Shell | OnFailure::Halt => None,
        OnFailure::Reboot => Some(Reboot::Restart),
        OnFailure::Poweroff => Some(Reboot::PowerOff),
    };
    if let Some(how) = reboot
        && let Err(e) = sys.execute(&Op::Reboot(how))
    {
        log::error!("reboot: {e}");
    }
}

fn stop_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::modload;
    use rootstock_core::modules::INDEX_FILE;
    use rootstock_core::seam::fake::{Call, FakeClock, Recorder};
    use rootstock_core::testutil::TempDir;

    pub(crate) use rootstock_core::testutil::{C1, C2};
    const KVER: &str = "6.1.0-test";

    /// A machine as PID 1 sees it, made of files: an initramfs with a
    /// module index, a `/sys` with a virtio device whose disk `vda` appears
    /// once virtio_blk is loaded ([`Kernel`]), a `/dev` node `vda` holding
    /// an ext4 image labelled `root`, and on it (as if mounted) a
    /// physical root with two deployments of stateroot `os`: C2 the
    /// default, C1 the rollback, both with modules for the running kernel.
    pub(crate) struct World {
        _t: TempDir,
        pub(crate) env: Env,
    }

    impl World {
        pub(crate) fn new(cmdline: &str) -> World {
            let t = TempDir::new();
            let p = t.path();
            let root = p.join("initramfs");
            let modules = root.join("lib/modules").join(KVER);
            std::fs::create_dir_all(&modules).unwrap();
            std::fs::write(root.join("init"), "").unwrap();
            std::fs::write(modules.join(INDEX_FILE), modload::tests::index(KVER)).unwrap();
            let virtio = p.join("sys/devices/pci0000:00/0000:00:04.0/virtio1");
            std::fs::create_dir_all(&virtio).unwrap();
            std::fs::write(virtio.join("uevent"), "MODALIAS=virtio:d00000002v00001AF4\n").unwrap();
            std::fs::create_dir_all(p.join("sys/class/block")).unwrap();
            std::fs::create_dir_all(p.join("sys/kernel")).unwrap();
            std::fs::create_dir_all(p.join("dev")).unwrap();
            let image = p.join("dev/vda");
            std::fs::File::create(&image).unwrap().set_len(8 << 20).unwrap();
            let out = std::process::Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "root"])
                .arg(&image)
                .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
                .output()
                .expect("mkfs.ext4 (Debian package e2fsprogs)");
            assert!(out.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&out.stderr));
            physical_root(&p.join("sysroot"));
            std::fs::write(p.join("cmdline"), cmdline).unwrap();
            std::fs::write(p.join("devkmsg"), "ratelimit\n").unwrap();
            let env = Env {
                root,
                dev: p.join("dev"),
                proc: p.join("proc"),
                sys: p.join("sys"),
                run: p.join("run"),
                cmdline: p.join("cmdline"),
                devkmsg: p.join("devkmsg"),
                kmsg: p.join("no-kmsg"),
                sysroot: p.join("sysroot"),
                kver: KVER.into(),
                modules,
                kexec_state: p.join("initramfs/rootstock-kexec-state"),
                shell: p.join("initramfs/bin/sh"),
            };
            World { _t: t, env }
        }

        fn path(&self, rel: &str) -> String {
            self.env.root.parent().unwrap().join(rel).display().to_string()
        }
    }

    /// A physical root as `ostree admin deploy` writes it (the layout the
    /// core's tests use), with modules for [`KVER`] in each deployment.
    pub(crate) fn physical_root(p: &Path) {
        rootstock_core::testutil::fake_physical_root(p, "root", Some(KVER));
    }

    const CMDLINE: &str = "root=LABEL=root rw ostree=/ostree/boot.1/os/2222222222222222222222222222222222222222222222222222222222222222/0 rootstock.tries=3 rootstock.root-timeout=1";

    /// The kernel's side of the tests' machine, over a recorder: every
    /// module loaded is announced (`uevent_seqnum` moves), and once
    /// virtio_blk is loaded the disk `vda` is in `/sys/class/block`.
    pub(crate) struct Kernel<'a> {
        pub(crate) rec: &'a mut Recorder,
        sys: PathBuf,
        seqnum: u64,
    }

    impl<'a> Kernel<'a> {
        /// A machine just started: no disk yet.
        pub(crate) fn new(env: &Env, rec: &'a mut Recorder) -> Kernel<'a> {
            let _ = std::fs::remove_dir_all(env.sys.join("class/block/vda"));
            let k = Kernel { rec, sys: env.sys.clone(), seqnum: 1 };
            k.announce();
            k
        }

        fn announce(&self) {
            std::fs::write(self.sys.join("kernel/uevent_seqnum"), format!("{}\n", self.seqnum)).unwrap();
        }
    }

    impl System for Kernel<'_> {
        fn execute(&mut self, op: &Op) -> Result<(), Errno> {
            self.rec.execute(op)?;
            if let Op::LoadModule { path, .. } = op {
                // A device whose uevent says `TEST_BOUND_BY=NAME` is taken
                // by module NAME when it loads (sysfs's `driver` link).
                let name = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
                for device in crate::modload::discover_devices(&self.sys.join("devices")) {
                    let uevent = std::fs::read_to_string(device.path.join("uevent")).unwrap_or_default();
                    if uevent.lines().any(|l| l == format!("TEST_BOUND_BY={name}")) {
                        std::fs::create_dir_all(device.path.join("driver")).unwrap();
                    }
                }
                if path.ends_with("virtio_blk.ko") {
                    let vda = self.sys.join("class/block/vda");
                    std::fs::create_dir_all(&vda).unwrap();
                    std::fs::write(vda.join("size"), "16384\n").unwrap();
                    std::fs::write(vda.join("dev"), "254:0\n").unwrap();
                    std::fs::write(vda.join("uevent"), "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n")
                        .unwrap();
                }
                self.seqnum += 1;
                self.announce();
            }
            Ok(())
        }

        fn query(&mut self, q: &Query) -> Result<bool, Errno> {
            self.rec.query(q)
        }
    }

    fn boot_with(w: &World, r: &mut Recorder) -> Result<Handover, Error> {
        let mut on_failure = OnFailure::default();
        boot(&mut Kernel::new(&w.env, r), &FakeClock::new(), &w.env, &["single".into()], &mut on_failure)
    }

    /// The calls of a successful boot, in segments: what each is, and its lines.
    fn successful_boot(w: &World) -> Vec<(&'static str, Vec<String>)> {
        let p = |rel: &str| w.path(rel);
        let s = p("sysroot");
        let t = format!("{s}.tmp");
        let d = format!("{s}/ostree/deploy/os/deploy/{C2}.0");
        let m = format!("{s}/ostree/rootstock");
        let k = format!("{}/lib/modules/{KVER}", p("initramfs"));
        let i = p("initramfs");
        let state = boot_state();
        vec![
            (
                "early mounts",
                vec![
                    format!("mkdir  - -> {} [0755]", p("dev")),
                    format!("mount  devtmpfs -> {} [devtmpfs MS_NOSUID mode=0755]", p("dev")),
                    format!("mkdir  - -> {} [0755]", p("proc")),
                    format!("mount  proc -> {} [proc MS_NOSUID|MS_NODEV|MS_NOEXEC]", p("proc")),
                    format!("mkdir  - -> {} [0755]", p("sys")),
                    format!("mount  sysfs -> {} [sysfs MS_NOSUID|MS_NODEV|MS_NOEXEC]", p("sys")),
                    format!("mkdir  - -> {} [0755]", p("run")),
                    format!("mount  tmpfs -> {} [tmpfs MS_NOSUID|MS_NODEV mode=0755]", p("run")),
                ],
            ),
            ("devkmsg", vec![format!(r#"write  "on\n" -> {} [in place]"#, p("devkmsg"))]),
            ("root driver", vec![format!("insmod - -> {k}/kernel/drivers/block/virtio_blk.ko [0]")]),
            (
                "modules",
                vec![
                    format!("insmod - -> {k}/kernel/lib/crc16.ko [0]"),
                    format!("insmod - -> {k}/kernel/fs/ext4/ext4.ko [0]"),
                ],
            ),
            (
                "mount root",
                vec![format!("mkdir  - -> {s} [0755]"), format!("mount  {} -> {s} [ext4]", p("dev/vda"))],
            ),
            // One writer of the markers at a time, at boot too.
            ("markers lock", vec![format!("lock   - -> {s}/ostree [LOCK_EX, wait 30 s]")]),
            // Does the plan need to make binds of the physical root writable?
            ("read-only root?", vec![format!("query  read-only? {s}")]),
            (
                "counting",
                vec![
                    format!("query  read-only? {s}"),
                    format!("mkdir  - -> {m} [0755]"),
                    format!("fsync  - -> {s}/ostree [directory]"),
                    format!("syncfs - -> {s}/ostree [filesystem]"),
                    format!("create - -> {m}/os-{C2}.0+02-01 [O_EXCL 0644]"),
                    format!("fsync  - -> {m} [directory]"),
                    format!("syncfs - -> {m} [filesystem]"),
                ],
            ),
            (
                "plan",
                vec![
                    "mount  none -> / [MS_REC|MS_PRIVATE]".into(),
                    format!("mkdir  - -> {t} [0755]"),
                    format!("mount  {d} -> {t} [MS_BIND]"),
                    format!("mount  {t}/usr -> {t}/usr [MS_BIND]"),
                    format!("mount  none -> {t}/usr [MS_REMOUNT|MS_BIND|MS_RDONLY]"),
                    format!("mount  {t}/etc -> {t}/etc [MS_BIND]"),
                    format!("mount  {s}/ostree/deploy/os/var -> {t}/var [MS_BIND]"),
                    format!("mount  {s} -> {t}/sysroot [MS_BIND]"),
                    format!("mount  {t} -> {s} [MS_MOVE]"),
                    // The GVariant ostree >= 2023 writes (its size does not depend on the values).
                    format!("write  103 bytes -> {}/ostree-booted [atomic]", p("run")),
                    format!("mkdir  - -> {}/ostree [0755]", p("run")),
                    format!("write  0 bytes -> {}/ostree/initramfs-mount-var [atomic]", p("run")),
                    format!("mkdir  - -> {}/rootstock [0755]", p("run")),
                    format!("write  {} bytes -> {}/rootstock/state [atomic]", state.len(), p("run")),
                    format!("unlink - -> {t} [AT_REMOVEDIR]"),
                ],
            ),
            ("markers unlock", vec![format!("unlock - -> {s}/ostree [LOCK_UN]")]),
            ("devkmsg back", vec![format!(r#"write  "ratelimit\n" -> {} [in place]"#, p("devkmsg"))]),
            ("sync", vec!["sync   - -> - [every filesystem]".into()]),
            (
                "switch root",
                vec![
                    format!("mount  none -> {i} [MS_REC|MS_PRIVATE]"),
                    format!("mount  {} -> {s}/dev [MS_MOVE]", p("dev")),
                    format!("mount  {} -> {s}/proc [MS_MOVE]", p("proc")),
                    format!("mount  {} -> {s}/sys [MS_MOVE]", p("sys")),
                    format!("mount  {} -> {s}/run [MS_MOVE]", p("run")),
                    format!("chdir  - -> {s} [cwd]"),
                ],
            ),
            ("free initramfs", vec![format!("empty  - -> {i} [this ramfs or tmpfs only]")]),
            (
                "enter the new root",
                vec![
                    format!("mount  . -> {i} [MS_MOVE]"),
                    "chroot - -> . [root]".into(),
                    "chdir  - -> / [cwd]".into(),
                ],
            ),
            ("console", vec!["open   /dev/console -> stdin stdout stderr [O_RDWR]".into()]),
            ("exec", vec![r#"exec   - -> /sbin/init [args "single"]"#.into()]),
        ]
    }

    /// /run/rootstock/state after booting the default.
    fn boot_state() -> String {
        format!(
            "requested=ostree=/ostree/boot.1/os/{C2}/0\nselected=os/{C2}.0\nindex=0\n\
             reason=default\ninit=/sbin/init\ncounting=indeterminate (2 left, 1 done)\n"
        )
    }

    #[test]
    fn the_whole_boot_in_order() {
        let w = World::new(CMDLINE);
        let mut r = Recorder::new();
        assert_eq!(boot_with(&w, &mut r), Ok(Handover::Init("/sbin/init".into())));
        let want: Vec<String> = successful_boot(&w).into_iter().flat_map(|(_, lines)| lines).collect();
        let got = r.lines();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "call {}", i + 1);
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
        // The state file is what the plan writes.
        let state = r.operations().find_map(|op| match op {
            Op::WriteFile { path, contents } if path.ends_with("rootstock/state") => Some(contents.text()),
            _ => None,
        });
        assert_eq!(state.as_deref(), Some(boot_state().as_str()));
        // The initramfs emptied is the directory PID 1 started in, no other.
        let m = std::fs::metadata(&w.env.root).unwrap();
        let empty = Op::EmptyRamfs { root: w.env.root.clone(), dev: m.dev(), ino: m.ino() };
        assert_eq!(
            r.operations().filter(|op| matches!(op, Op::EmptyRamfs { .. })).collect::<Vec<_>>(),
            [&empty]
        );
    }

    /// Waiting for a root that never comes: the whole timeout passes on
    /// the clock, in steps of at most 50 ms, and none of it really.
    #[test]
    fn waiting_for_the_root_takes_the_clock_s_time_not_the_test_s() {
        let w = World::new("root=LABEL=nope rootstock.root-timeout=30");
        let (clock, real) = (FakeClock::new(), Instant::now());
        let mut r = Recorder::new();
        let err = boot(&mut Kernel::new(&w.env, &mut r), &clock, &w.env, &[], &mut OnFailure::default());
        assert!(matches!(err, Err(Error::RootNotFound { waited_secs: 30, .. })), "{err:?}");
        let slept = clock.slept();
        assert!(slept >= Duration::from_secs(30) && slept < Duration::from_millis(30_050), "{slept:?}");
        assert!(real.elapsed() < Duration::from_secs(10), "really waited {:?}", real.elapsed());
    }

    #[test]
    fn overlayfs_is_loaded_before_a_hotfixed_deployment_is_laid_out() {
        use rootstock_core::layout::{HOTFIX_UPPER, HOTFIX_WORK};
        let w = World::new(CMDLINE);
        let index =
            modload::tests::index(KVER) + "overlay\tkernel/fs/overlayfs/overlay.ko\t\t\t\tfs-overlay\n";
        std::fs::write(w.env.modules.join(INDEX_FILE), index).unwrap();
        let d2 = w.env.sysroot.join(format!("ostree/deploy/os/deploy/{C2}.0"));
        std::fs::create_dir(d2.join(HOTFIX_UPPER)).unwrap();
        std::fs::create_dir(d2.join(HOTFIX_WORK)).unwrap();
        let mut r = Recorder::new();
        assert_eq!(boot_with(&w, &mut r), Ok(Handover::Init("/sbin/init".into())));
        let ops: Vec<&Op> = r.operations().collect();
        let overlay_ko = w.env.modules.join("kernel/fs/overlayfs/overlay.ko");
        let load = ops.iter().position(|op| matches!(op, Op::LoadModule { path, .. } if *path == overlay_ko));
        let mount = ops.iter().position(|op| matches!(op, Op::Overlay { .. }));
        assert!(matches!((load, mount), (Some(l), Some(m)) if l < m), "{ops:#?}");
    }

    #[test]
    fn erofs_and_overlayfs_are_loaded_when_composefs_is_asked_for() {
        let fs = |name: &str, dir: &str| format!("{name}\tkernel/fs/{dir}/{name}.ko\t\t\t\tfs-{name}\n");
        let loaded = |cmdline: &str| {
            let w = World::new(cmdline);
            let index = modload::tests::index(KVER) + &fs("overlay", "overlayfs") + &fs("erofs", "erofs");
            std::fs::write(w.env.modules.join(INDEX_FILE), index).unwrap();
            let mut r = Recorder::new();
            let _ = boot_with(&w, &mut r);
            let mut names: Vec<String> = r
                .operations()
                .filter_map(|op| match op {
                    Op::LoadModule { path, .. } => path.file_stem().map(|n| n.to_string_lossy().into_owned()),
                    _ => None,
                })
                .filter(|n| n == "overlay" || n == "erofs")
                .collect();
            names.sort();
            names
        };
        assert!(loaded(CMDLINE).is_empty(), "composefs off: neither");
        for arg in ["maybe", "yes", "signed"] {
            let cmdline = format!("{CMDLINE} ostree.prepare-root.composefs={arg}");
            assert_eq!(loaded(&cmdline), ["erofs", "overlay"], "{arg}");
        }
    }

    /// The path the error of a failed call names.
    fn named_path(w: &World, call: &Call) -> PathBuf {
        match call {
            // Entering the new root names it.
            Call::Op(Op::Move { source, .. } | Op::Chroot { path: source }) if source == Path::new(".") => {
                w.env.sysroot.clone()
            }
            Call::Op(op) => op.target().to_path_buf(),
            Call::Query(_) => unreachable!(),
        }
    }

    #[test]
    fn a_failure_at_each_step_is_named_or_gone_around() {
        let w = World::new(CMDLINE);
        let segments = successful_boot(&w);
        let full: Vec<(&str, String)> =
            segments.iter().flat_map(|(seg, lines)| lines.iter().map(move |l| (*seg, l.clone()))).collect();
        let plan_start = full.iter().position(|(seg, _)| *seg == "plan").unwrap() + 1;
        let mut good = Recorder::new();
        boot_with(&w, &mut good).unwrap();
        let (mut fatal, mut tolerated, mut fell_back, mut no_root) = (0, 0, 0, 0);
        for n in 1..=full.len() {
            let (segment, line) = &full[n - 1];
            let mut r = Recorder::failing_at(n, Errno::IO);
            let result = boot_with(&w, &mut r);
            let lines = r.lines();
            assert_eq!(lines[..n], good.lines()[..n], "fail at {n} ({line}): the same calls up to it");
            match *segment {
                // What PID 1 cannot do without: the error names the step, the
                // path and the errno, and nothing runs after the failed call.
                "early mounts" | "mount root" | "switch root" | "enter the new root" | "exec" => {
                    let err = result.expect_err(line).to_string();
                    let path = named_path(&w, &good.calls[n - 1]);
                    assert!(err.starts_with("step: "), "fail at {n} ({line}): {err}");
                    assert!(err.contains(&path.display().to_string()), "fail at {n} ({line}): {err}");
                    assert!(err.contains("EIO 5 (Input/output error)"), "fail at {n} ({line}): {err}");
                    assert_eq!(lines.len(), n, "fail at {n} ({line}): nothing after it: {lines:#?}");
                    fatal += 1;
                }
                // Without its driver the root never appears: PID 1 waits
                // for it (one second here) and says so.
                "root driver" => {
                    let err = result.expect_err(line).to_string();
                    assert!(err.starts_with("step: find the root device\n"), "fail at {n} ({line}): {err}");
                    assert_eq!(lines.len(), n, "fail at {n} ({line}): nothing after it: {lines:#?}");
                    no_root += 1;
                }
                // A failed plan step is undone and the rollback booted.
                "plan" => {
                    assert_eq!(result, Ok(Handover::Init("/sbin/init".into())), "fail at {n} ({line})");
                    let undo = lines[n..].first().filter(|l| l.starts_with("umount"));
                    // Once the deployment is bound (step 3), its mounts are detached.
                    assert_eq!(undo.is_some(), n - plan_start + 1 > 3, "fail at {n} ({line}): {lines:#?}");
                    let state = r.operations().filter_map(|op| match op {
                        Op::WriteFile { path, contents } if path.ends_with("rootstock/state") => {
                            Some(contents.text())
                        }
                        _ => None,
                    });
                    let state = state.last().expect("a state written");
                    assert!(
                        state.contains(&format!("selected=os/{C1}.0\n")),
                        "fail at {n} ({line}): {state}"
                    );
                    assert!(state.contains("reason=fallback\n"), "{state}");
                    fell_back += 1;
                }
                // The rest is not worth failing the boot for: it goes on.
                _ => {
                    assert_eq!(result, Ok(Handover::Init("/sbin/init".into())), "fail at {n} ({line})");
                    assert!(lines.last().unwrap().starts_with("exec"), "fail at {n} ({line})");
                    tolerated += 1;
                }
            }
        }
        // Every call of the boot was failed once: 20 stop it, 1 keeps the
        // root from appearing, 15 make it fall back, the other 17 it goes on
        // without (the markers' lock among them: booting beats not booting).
        assert_eq!((fatal, no_root, fell_back, tolerated), (20, 1, 15, 17));
    }

    /// The default deployment (C2) built for another kernel, whose own
    /// kernel and initramfs are in /boot as its entry names them.
    fn built_for_another_kernel(w: &World) -> PathBuf {
        let s = &w.env.sysroot;
        std::fs::remove_dir(s.join(format!("ostree/deploy/os/deploy/{C2}.0/usr/lib/modules/{KVER}")))
            .unwrap();
        let boot = s.join(format!("boot/ostree/os-{C2}"));
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::write(boot.join("vmlinuz"), "k").unwrap();
        std::fs::write(boot.join("initramfs.img"), "i").unwrap();
        boot.join("vmlinuz")
    }

    #[test]
    fn a_deployment_for_another_kernel_is_kexeced_and_nothing_is_laid_out() {
        let w = World::new(CMDLINE);
        let kernel = built_for_another_kernel(&w);
        let mut r = Recorder::new();
        assert_eq!(boot_with(&w, &mut r), Ok(Handover::Kexec(kernel.clone())));
        let lines = r.lines();
        let s = w.env.sysroot.display();
        let tail: Vec<String> = lines[lines.len() - 5..].to_vec();
        assert!(
            tail[0].starts_with(&format!(
                "kexec  {} -> {s}/boot/ostree/os-{C2}/initramfs.img [cmdline ",
                kernel.display()
            )),
            "{tail:#?}"
        );
        assert_eq!(
            tail[1..],
            [
                format!("unlock - -> {s}/ostree [LOCK_UN]"),
                format!("umount - -> {s} [MNT_DETACH]"),
                "sync   - -> - [every filesystem]".into(),
                "reboot - -> - [LINUX_REBOOT_CMD_KEXEC]".into()
            ]
        );
        assert!(!lines.iter().any(|l| l.contains("[MS_BIND]") || l.contains("[MS_MOVE]")), "{lines:#?}");
        let n = lines.len();

        // The reboot refused: the error names the step, the kernel and the errno.
        let mut r = Recorder::failing_at(n, Errno::PERM);
        let err = boot_with(&w, &mut r).unwrap_err();
        assert_eq!(err, Error::Kexec { kernel: kernel.clone(), errno: Errno::PERM });
        assert!(err.to_string().contains(&kernel.display().to_string()), "{err}");
        assert_eq!(r.calls.len(), n);

        // kexec_file_load refused: booted on the running kernel instead.
        let mut r = Recorder::failing_on(|c| matches!(c, Call::Op(Op::KexecLoad(_))), Errno::PERM);
        assert_eq!(boot_with(&w, &mut r), Ok(Handover::Init("/sbin/init".into())));
        assert!(r.operations().any(|op| matches!(op, Op::Move { source, .. } if source == Path::new("."))));
    }

    #[test]
    fn a_root_that_never_appears_is_described() {
        let w = World::new("root=LABEL=nope rootstock.root-timeout=0");
        let mut r = Recorder::new();
        let err = boot_with(&w, &mut r).unwrap_err().to_string();
        let vda = w.path("dev/vda");
        assert!(
            err.starts_with("step: find the root device\nerror: root=LABEL=nope did not appear within 0 s"),
            "{err}"
        );
        assert!(err.contains(&format!("\n  {vda} TYPE=ext4 UUID=")) && err.contains(" LABEL=root"), "{err}");
        assert!(err.contains("\nmodules loaded: virtio_blk\n"), "{err}");
        let lines = r.lines();
        assert!(lines.last().unwrap().starts_with("insmod") && lines.len() == 10, "{lines:#?}");
    }

    #[test]
    fn drivers_for_other_hardware_are_left_to_the_booted_system() {
        let w = World::new(CMDLINE);
        // A USB keyboard, whose driver is in the index, on a controller
        // whose driver is built in.
        let index = w.env.modules.join(INDEX_FILE);
        let mut text = std::fs::read_to_string(&index).unwrap();
        text.push_str(
            "usbhid\tkernel/drivers/hid/usbhid/usbhid.ko\t\t\t\tusb:v*p*d*dc*dsc*dp*ic03isc*ip*in*\n",
        );
        std::fs::write(&index, text).unwrap();
        let kbd = w.env.sys.join("devices/pci0000:00/0000:00:05.0/usb1/1-1/1-1:1.0");
        std::fs::create_dir_all(&kbd).unwrap();
        std::fs::write(kbd.join("uevent"), "MODALIAS=usb:v0627p0001d0000dc00dsc00dp00ic03isc01ip01in00\n")
            .unwrap();
        let mut r = Recorder::new();
        assert_eq!(boot_with(&w, &mut r), Ok(Handover::Init("/sbin/init".into())));
        let insmods: Vec<String> = r.lines().into_iter().filter(|l| l.starts_with("insmod")).collect();
        assert_eq!(insmods.len(), 3, "{insmods:#?}");
        assert!(!insmods.iter().any(|l| l.contains("usbhid")), "{insmods:#?}");
        // Without the root, it is loaded while PID 1 waits, once the disk
        // driver's devices have settled.
        let w = World::new("root=LABEL=nope rootstock.root-timeout=1");
        std::fs::write(w.env.modules.join(INDEX_FILE), std::fs::read_to_string(&index).unwrap()).unwrap();
        let kbd = w.env.sys.join("devices/pci0000:00/0000:00:05.0/usb1/1-1/1-1:1.0");
        std::fs::create_dir_all(&kbd).unwrap();
        std::fs::write(kbd.join("uevent"), "MODALIAS=usb:v0627p0001d0000dc00dsc00dp00ic03isc01ip01in00\n")
            .unwrap();
        let mut r = Recorder::new();
        let err = boot_with(&w, &mut r).unwrap_err().to_string();
        assert!(err.contains("\nmodules loaded: virtio_blk usbhid\n"), "{err}");
    }

    /// After loading a device's drivers PID 1 waits for what they bring
    /// before it loads drivers for hardware elsewhere, but only when a
    /// driver took the device: for an empty virtio-mmio slot (no `driver`
    /// link after the load) it goes on at once. With no time to wait
    /// (`rootstock.root-timeout=0`), what was loaded shows which.
    #[test]
    fn a_device_no_driver_took_is_not_waited_for() {
        for mmio_bound in [false, true] {
            let w = World::new("root=LABEL=nope rootstock.root-timeout=0");
            std::fs::remove_dir_all(w.env.sys.join("devices/pci0000:00/0000:00:04.0")).unwrap();
            let index = w.env.modules.join(INDEX_FILE);
            let mut text = std::fs::read_to_string(&index).unwrap();
            text.push_str(
                "virtio_mmio\tkernel/drivers/virtio/virtio_mmio.ko\t\t\t\tof:N*T*Cvirtio,mmio*\n\
                 ahci\tkernel/drivers/ata/ahci.ko\t\t\t\tpci:v*d*sv*sd*bc01sc06i01*\n",
            );
            std::fs::write(&index, text).unwrap();
            for (m, size) in [("drivers/virtio/virtio_mmio", 10), ("drivers/ata/ahci", 1000)] {
                let f = w.env.modules.join(format!("kernel/{m}.ko"));
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(f, vec![0u8; size]).unwrap();
            }
            let slot = w.env.sys.join("devices/platform/a000000.virtio_mmio");
            std::fs::create_dir_all(&slot).unwrap();
            let bound = if mmio_bound { "TEST_BOUND_BY=virtio_mmio\n" } else { "" };
            std::fs::write(
                slot.join("uevent"),
                format!("MODALIAS=of:Nvirtio_mmioT(null)Cvirtio,mmio\n{bound}"),
            )
            .unwrap();
            let sata = w.env.sys.join("devices/pci0000:00/0000:00:1f.2");
            std::fs::create_dir_all(&sata).unwrap();
            std::fs::write(
                sata.join("uevent"),
                "MODALIAS=pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\nTEST_BOUND_BY=ahci\n",
            )
            .unwrap();
            let err = boot_with(&w, &mut Recorder::new()).unwrap_err().to_string();
            let want = if mmio_bound {
                "\nmodules loaded: virtio_mmio\n"
            } else {
                "\nmodules loaded: virtio_mmio ahci\n"
            };
            assert!(err.contains(want), "bound: {mmio_bound}: {err}");
        }
    }

    #[test]
    fn the_command_line_decides_before_anything_is_mounted_beyond_the_api() {
        // Unreadable: named with its path.
        let w = World::new("");
        std::fs::remove_file(&w.env.cmdline).unwrap();
        let err = boot_with(&w, &mut Recorder::new()).unwrap_err();
        assert_eq!(err, Error::ReadCmdline { path: w.env.cmdline.clone(), errno: Errno::NOENT });
        // No root=.
        let w = World::new("quiet rootstock.on-failure=poweroff");
        let mut r = Recorder::new();
        let mut on_failure = OnFailure::default();
        let err = boot(&mut r, &FakeClock::new(), &w.env, &[], &mut on_failure).unwrap_err();
        assert_eq!(err, Error::NoRootArgument);
        assert_eq!(on_failure, OnFailure::Poweroff, "read before the failure");
        assert_eq!(r.calls.len(), 9, "the API filesystems and devkmsg only: {:#?}", r.lines());
    }

    #[test]
    fn the_root_is_mounted_as_the_command_line_says() {
        let cmdline = format!(
            "root=LABEL=root rootfstype=ext4 rootflags=noatime,errors=remount-ro ro rootstock.root-timeout=1 ostree=/ostree/boot.1/os/{C2}/0"
        );
        let w = World::new(&cmdline);
        let mut r = Recorder::new();
        boot_with(&w, &mut r).unwrap();
        let mount = format!(
            "mount  {} -> {} [ext4 MS_RDONLY noatime,errors=remount-ro]",
            w.path("dev/vda"),
            w.path("sysroot")
        );
        assert!(r.lines().contains(&mount), "{:#?}", r.lines());
        // Not counted: no tries given.
        assert!(!r.lines().iter().any(|l| l.contains("ostree/rootstock")));
    }

    #[test]
    fn ostrees_prepare_root_as_init_runs_the_deployments_own_init() {
        // What `ostree admin deploy` writes for a commit without an
        // initramfs, booted through rootstock's initramfs all the same.
        let cmdline = format!(
            "root=LABEL=root rootstock.root-timeout=1 ostree=/ostree/boot.1/os/{C2}/0 \
             init=/ostree/boot.1/os/{C2}/0/usr/lib/ostree/ostree-prepare-root"
        );
        let w = World::new(&cmdline);
        let mut r = Recorder::new();
        let handover = boot_with(&w, &mut r).unwrap();
        assert!(matches!(&handover, Handover::Init(p) if p == Path::new("/sbin/init")), "{handover:?}");
        // A real init= is still honoured.
        let w = World::new(&format!(
            "root=LABEL=root rootstock.root-timeout=1 ostree=/ostree/boot.1/os/{C2}/0 init=/usr/sbin/init"
        ));
        let handover = boot_with(&w, &mut Recorder::new()).unwrap();
        assert!(matches!(&handover, Handover::Init(p) if p == Path::new("/usr/sbin/init")), "{handover:?}");
    }

    #[test]
    fn on_failure_does_what_the_command_line_says() {
        let w = World::new("");
        let err = Error::NoRootArgument;
        let sync = "sync   - -> - [every filesystem]".to_string();
        let restart = "reboot - -> - [LINUX_REBOOT_CMD_RESTART]".to_string();
        let shell = format!("spawn  - -> {} [-sh]", w.env.shell.display());
        let cases = [
            (OnFailure::Shell, vec![sync.clone()]),
            (OnFailure::Halt, vec![sync.clone()]),
            (OnFailure::Reboot, vec![sync.clone(), restart.clone()]),
            (OnFailure::Poweroff, vec![sync.clone(), "reboot - -> - [LINUX_REBOOT_CMD_POWER_OFF]".into()]),
        ];
        for (action, want) in cases {
            let mut r = Recorder::new();
            fail(&mut r, &w.env, &err, action);
            assert_eq!(r.lines(), want, "{action:?}");
        }
        // With a shell: the shell, then a reboot, even when it cannot start.
        std::fs::create_dir_all(w.env.shell.parent().unwrap()).unwrap();
        std::fs::write(&w.env.shell, "").unwrap();
        for r in [Recorder::new(), Recorder::failing_at(2, Errno::NOEXEC)] {
            let mut r = r;
            fail(&mut r, &w.env, &err, OnFailure::Shell);
            assert_eq!(r.lines(), [sync.clone(), shell.clone(), restart.clone()]);
        }
    }
}
