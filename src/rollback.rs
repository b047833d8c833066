//! `rootstock rollback`: a deployment on probation that fails its health
//! checks is marked bad and the fallback booted the fastest safe way, and
//! the boot history says what happened.
//!
//! `--watch` is `rootstock-rollback.service`: it records this userspace's
//! attempt, then watches `boot-complete.target` (health checks order
//! themselves before it and are required by it). Reached: nothing to do
//! (`rootstock bless` blesses). Failed, or not reached within the watchdog's
//! time: roll back. Without `--watch`: roll back now, by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use argh::FromArgs;

use rootstock_core::cmdline::{DeploymentChoice, KernelArgs, Kexec};
use rootstock_core::config::Config;
use rootstock_core::counting::{self, BootCounting, Count};
use rootstock_core::history::{self, History, How, Record, Verdict};
use rootstock_core::layout;
use rootstock_core::rollback::{self, Action, Health, Observation, Way};
use rootstock_core::seam::System;
use rootstock_core::soft_reboot::{self, Options, Prepared};
use rootstock_core::state::{BootState, Reason};

use crate::error::Error;
use crate::status;

#[derive(FromArgs, Debug)]
/// Mark the booted deployment bad and boot the fallback (soft reboot, kexec
/// or reboot); with --watch, do so only when its health checks fail or the
/// watchdog fires (rootstock-rollback.service).
#[argh(subcommand, name = "rollback")]
pub struct RollbackArgs {
    /// the EFI system partition, for the boot loader's entry (default /efi
    /// or /boot/efi, whichever holds loader/entries)
    #[argh(option)]
    esp: Option<PathBuf>,
    /// watch boot-complete.target and roll back a deployment on probation
    /// that does not reach it
    #[argh(switch)]
    watch: bool,
    /// without --watch: auto (the default), reboot or mark (mark it bad
    /// only); --watch takes the configuration's and rootstock.rollback=
    #[argh(option)]
    action: Option<String>,
    /// say what would be done and change nothing
    #[argh(switch)]
    dry_run: bool,
    /// where the physical root is mounted (default /sysroot)
    #[argh(option, default = "PathBuf::from(\"/sysroot\")")]
    sysroot: PathBuf,
    /// the running root, compared with each deployment (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    root: PathBuf,
    /// runtime directory (default /run)
    #[argh(option, default = "PathBuf::from(\"/run\")")]
    run_dir: PathBuf,
    /// where a soft reboot's new root is laid out (default /run/nextroot)
    #[argh(option, default = "PathBuf::from(\"/run/nextroot\")")]
    nextroot: PathBuf,
    /// where the boot loader entries' kernels are, for kexec (default /boot)
    #[argh(option, default = "PathBuf::from(\"/boot\")")]
    boot: PathBuf,
    /// config file to use instead of /etc/rootstock/rootstock.conf or
    /// /usr/lib/rootstock/rootstock.conf
    #[argh(option)]
    config: Option<PathBuf>,
    /// directory under which the default config files are looked up (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    config_root: PathBuf,
    /// the kernel command line (default /proc/cmdline)
    #[argh(option, default = "PathBuf::from(\"/proc/cmdline\")")]
    cmdline: PathBuf,
    /// the running kernel's release (default: uname -r)
    #[argh(option)]
    kernel_release: Option<String>,
    /// the kernel's boot id (default /proc/sys/kernel/random/boot_id)
    #[argh(option, default = "PathBuf::from(\"/proc/sys/kernel/random/boot_id\")")]
    boot_id: PathBuf,
    /// the systemctl program (default systemctl)
    #[argh(option, default = "PathBuf::from(\"systemctl\")")]
    systemctl: PathBuf,
    /// seconds between two looks at systemd (default 1)
    #[argh(option, default = "1")]
    interval: u64,
}

/// What systemd is asked, and told, through `systemctl`.
struct Systemctl {
    program: PathBuf,
}

impl Systemctl {
    fn run(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(&self.program).args(args).env("SYSTEMD_COLORS", "0").output();
        match out {
            Ok(o) => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
            Err(e) => {
                log::warn!("{} {}: {e}", self.program.display(), args.join(" "));
                None
            }
        }
    }

    /// `KEY=VALUE` lines of `systemctl show`.
    fn show(&self, unit: &str, props: &[&str]) -> Vec<(String, String)> {
        let mut args = vec!["show", unit];
        for p in props {
            args.extend(["-p", p]);
        }
        self.run(&args)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect()
    }

    /// What systemd says now. `since_us`: CLOCK_MONOTONIC (systemd's
    /// `…TimestampMonotonic`, µs) when the watch began.
    fn observe(&self, since_us: u64) -> Observation {
        let target = self.show(
            "boot-complete.target",
            &["ActiveState", "ActiveEnterTimestampMonotonic", "Requires", "Requisite", "BindsTo"],
        );
        let get =
            |k: &str| target.iter().filter(|(key, _)| key == k).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        // Reached since the watch began, also when a shutdown stopped it
        // since (a soft reboot keeps the previous userspace's timestamps:
        // only a later one counts).
        let reached =
            get("ActiveEnterTimestampMonotonic").iter().any(|v| v.parse::<u64>().is_ok_and(|t| t > since_us));
        let boot_complete = get("ActiveState").contains(&"active") || reached;
        let jobs = self.run(&["list-jobs", "--plain", "--no-legend", "--no-pager"]).unwrap_or_default();
        let jobs: Vec<Vec<&str>> = jobs.lines().map(|l| l.split_whitespace().collect()).collect();
        // Asked last: a shutdown that began while the others were asked
        // (and stopped boot-complete.target) is seen.
        let stopping = jobs.iter().any(|j| j.get(1).is_some_and(|u| rollback::SHUTDOWN_TARGETS.contains(u)))
            || self.run(&["is-system-running"]).is_some_and(|s| s.trim() == "stopping");
        let boot_complete_job = jobs.iter().any(|j| j.get(1) == Some(&"boot-complete.target"));
        let running = jobs
            .iter()
            .filter(|j| j.get(3) == Some(&"running"))
            .filter_map(|j| j.get(1).map(|u| u.to_string()))
            .collect();
        let mut failed = Vec::new();
        if !boot_complete && !boot_complete_job {
            let required: Vec<&str> = ["Requires", "Requisite", "BindsTo"]
                .iter()
                .flat_map(|k| get(k))
                .flat_map(|v| v.split(' '))
                .collect();
            let all: Vec<String> = self
                .run(&["list-units", "--state=failed", "--plain", "--no-legend", "--no-pager", "--all"])
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_whitespace().find(|w| w.contains('.')).map(String::from))
                .collect();
            let health: Vec<String> =
                all.iter().filter(|u| required.contains(&u.as_str())).cloned().collect();
            failed = if health.is_empty() { all } else { health };
        }
        Observation { stopping, boot_complete, boot_complete_job, failed, running }
    }

    /// systemd's count of soft reboots of this kernel (0 before systemd 256).
    fn soft_reboots(&self) -> u32 {
        self.run(&["show", "-p", "SoftRebootsCount", "--value"])
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `systemctl --no-block soft-reboot|kexec|reboot`: queued, not waited
    /// for (it stops this service).
    fn start(&self, way: Way) -> Result<(), String> {
        let verb = match way {
            Way::SoftReboot => "soft-reboot",
            Way::Kexec => "kexec",
            Way::Reboot => "reboot",
            Way::None => return Ok(()),
        };
        match Command::new(&self.program).args(["--no-block", verb]).status() {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(format!("systemctl --no-block {verb}: {s}")),
            Err(e) => Err(format!("{} --no-block {verb}: {e}", self.program.display())),
        }
    }
}

/// The kernel's boot id (`/proc/sys/kernel/random/boot_id`); empty when it
/// cannot be read (the history then tells no attempt apart by it).
pub fn read_boot_id(path: &Path) -> String {
    rootstock_core::confine::read_text(path, 64).map(|t| t.trim().to_string()).unwrap_or_default()
}

/// Everything about this userspace the rollback and the history need.
struct Booted {
    /// `$stateroot/$csum.$serial`.
    label: String,
    version: String,
    state: Option<BootState>,
    /// Came from a soft reboot's state.
    soft_rebooted: bool,
    count: Count,
    last_try: bool,
    /// Its entry is counted by the boot loader (systemd-boot's `+LEFT-DONE`,
    /// dropped when blessed): on probation as well.
    loader_counted: bool,
    boot_id: String,
    userspace: u32,
}

fn booted(a: &RollbackArgs, ctl: &Systemctl) -> Result<Booted, Error> {
    let mut s = status::gather(&a.sysroot, &a.root, &a.run_dir)?;
    // The boot loader's live counters are the ESP's names.
    let esp = status::with_esp(&mut s, &a.root, a.esp.as_deref());
    let row = s
        .deployments
        .iter()
        .find(|r| r.booted)
        .ok_or_else(|| Error::NotBooted { sysroot: a.sysroot.clone(), root: a.root.clone() })?;
    let pending = rootstock_core::confine::read_text(
        &a.run_dir.join(rootstock_core::plan::PENDING_STATE),
        rootstock_core::confine::SMALL_FILE_CAP,
    )
    .ok()
    .and_then(|t| BootState::parse(&t).ok());
    let b = Booted {
        label: format!("{}/{}", row.stateroot, row.id),
        version: row.version.clone(),
        soft_rebooted: s.boot.is_some() && s.boot == pending,
        state: s.boot.clone(),
        count: row.counting,
        last_try: row.last_try,
        // Without the ESP, the state says whether the boot loader counted
        // this boot; blessed, rootstock's marker is good.
        loader_counted: row.loader.is_some()
            || (!esp
                && row.counting != Count::Good
                && s.boot.as_ref().is_some_and(|b| b.loader_entry.is_some())),
        boot_id: read_boot_id(&a.boot_id),
        userspace: ctl.soft_reboots(),
    };
    Ok(b)
}

impl Booted {
    /// Counted (by rootstock or the boot loader) and not blessed.
    fn on_probation(&self) -> bool {
        rollback::on_probation(self.count, self.last_try) || self.loader_counted
    }

    fn how(&self, args: &KernelArgs) -> How {
        if self.soft_rebooted {
            How::SoftReboot
        } else if args.kexeced.is_some() || args.booted_by_kexec {
            How::Kexec
        } else {
            How::Boot
        }
    }

    /// Worth a record: on probation, a fallback, chosen by hand, entered
    /// by soft reboot or kexec.
    fn newsworthy(&self, args: &KernelArgs) -> bool {
        let reason = self.state.as_ref().map_or(Reason::Default, |s| s.reason);
        self.on_probation() || reason != Reason::Default || self.how(args) != How::Boot
    }

    /// A new record of this userspace.
    fn record(&self, args: &KernelArgs, seq: u64) -> Record {
        let state = self.state.clone().unwrap_or_default();
        Record {
            seq,
            time: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            boot_id: self.boot_id.clone(),
            userspace: self.userspace,
            deployment: self.label.clone(),
            version: self.version.clone(),
            how: self.how(args),
            reason: state.reason,
            from: state.skipped,
            counting: state.counting.to_string(),
            ..Record::default()
        }
    }
}

/// Change this userspace's record with `change` and write it, under the
/// marker directory's lock. Without one, `new` makes it from the next
/// number, or says (`None`) that nothing is to be written.
pub fn update_history(
    sys: &mut dyn System,
    physical_root: &Path,
    new: impl FnOnce(u64) -> Option<Record>,
    (boot_id, deployment): (&str, &str),
    change: impl FnOnce(&mut Record),
) -> Result<Option<Record>, Error> {
    rootstock_core::lock::with(sys, &rootstock_core::lock::markers(physical_root), |sys| {
        let h = History::read(physical_root);
        for p in &h.problems {
            log::warn!("boot history: {p}");
        }
        let Some(mut r) = h.find(boot_id, deployment).cloned().or_else(|| new(h.next_seq())) else {
            return Ok(None);
        };
        change(&mut r);
        history::write(sys, physical_root, &r, &h)?;
        Ok(Some(r))
    })
}

/// After `bless`: give this userspace's record, when rootstock-rollback.service
/// made one, its verdict. Nothing recorded, nothing written.
pub fn record_blessing(
    sys: &mut dyn System,
    (physical_root, root, run): (&Path, &Path, &Path),
    boot_id: &Path,
    verdict: Verdict,
) -> Result<Option<Record>, Error> {
    let Some((stateroot, id)) = status::booted_deployment(physical_root, root, run)? else { return Ok(None) };
    let key = (read_boot_id(boot_id), format!("{stateroot}/{id}"));
    update_history(sys, physical_root, |_| None, (&key.0, &key.1), |r| r.verdict = verdict)
}

pub fn run(a: RollbackArgs) -> Result<(), Error> {
    let (config, _) = Config::load(&a.config_root, a.config.as_deref())?;
    let args = crate::soft_reboot::read_args(&a.cmdline).unwrap_or_default();
    let ctl = Systemctl { program: a.systemctl.clone() };
    if !a.dry_run && !rootstock_core::prepare::is_mount_point(&a.sysroot).unwrap_or(false) {
        return Err(Error::SysrootNotMounted { path: a.sysroot.clone() });
    }
    let me = booted(&a, &ctl)?;
    let mut sys = rootstock_sys::Linux;
    if !a.watch {
        let action = match a.action.as_deref() {
            None => Action::Auto,
            Some(v) => match v.parse() {
                Ok(Action::Off) | Err(()) => return Err(Error::BadActionArg { value: v.to_string() }),
                Ok(x) => x,
            },
        };
        return roll_back(&a, &args, &ctl, &mut sys, (&me, &config), (action, Verdict::Bad, vec![]));
    }
    let (action, watchdog, problems) =
        rollback::settings((config.rollback.action, config.rollback.watchdog), &args);
    for p in problems {
        log::warn!("{p}");
    }
    if me.newsworthy(&args) && !a.dry_run {
        let r = update_history(
            &mut sys,
            &a.sysroot,
            |seq| Some(me.record(&args, seq)),
            (&me.boot_id, &me.label),
            |_| {},
        );
        match r {
            Ok(None) => {}
            Ok(Some(r)) => {
                log::info!("boot history: attempt {} recorded ({} by {})", r.seq, r.deployment, r.how)
            }
            Err(e) => log::warn!("boot history: {e}: this attempt is not recorded"),
        }
    }
    if action == Action::Off {
        log::info!("rollback is off (rollback.action, rootstock.rollback=): not watching");
        return Ok(());
    }
    if !me.on_probation() {
        log::info!("{} is not on probation ({}): nothing to watch", me.label, me.count);
        return Ok(());
    }
    match watchdog {
        Some(w) => {
            log::info!("watching {}: boot-complete.target within {} s ({action})", me.label, w.as_secs())
        }
        None => log::info!("watching {}: boot-complete.target, no watchdog ({action})", me.label),
    }
    let started = Instant::now();
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let since_us =
        u64::try_from(now.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(now.tv_nsec).unwrap_or(0) / 1000;
    let interval = Duration::from_secs(a.interval.max(1));
    let (verdict, units) = loop {
        let mut health = rollback::judge(&ctl.observe(since_us), started.elapsed(), watchdog);
        if matches!(health, Health::Failed(_) | Health::Hung(_)) {
            // Confirmed by a second look: a verdict is never taken from a
            // view that was changing (a shutdown beginning) while it was read.
            std::thread::sleep(interval);
            let again = rollback::judge(&ctl.observe(since_us), started.elapsed(), watchdog);
            if std::mem::discriminant(&again) != std::mem::discriminant(&health) {
                log::info!("not confirmed a second later ({again:?}): watching on");
                continue;
            }
            health = again;
        }
        match health {
            Health::Waiting => std::thread::sleep(interval),
            Health::Healthy => {
                log::info!("boot-complete.target reached: {} is healthy", me.label);
                return Ok(());
            }
            Health::Stopping => {
                log::info!("the system is shutting down: no verdict");
                return Ok(());
            }
            Health::Failed(units) => {
                log::error!("a health check failed ({}): rolling back {}", names(&units), me.label);
                break (Verdict::BadHealthCheck, units);
            }
            Health::Hung(units) => {
                log::error!(
                    "boot-complete.target not reached within {} s (still starting: {}): rolling back {}",
                    watchdog.map_or(0, |w| w.as_secs()),
                    names(&units),
                    me.label
                );
                break (Verdict::BadWatchdog, units);
            }
        }
    };
    roll_back(&a, &args, &ctl, &mut sys, (&me, &config), (action, verdict, units))
}

fn names(units: &[String]) -> String {
    if units.is_empty() { "none named".into() } else { units.join(", ") }
}

/// Mark the booted deployment bad, then boot the fallback the first way
/// that works, and record it.
fn roll_back(
    a: &RollbackArgs,
    args: &KernelArgs,
    ctl: &Systemctl,
    sys: &mut dyn System,
    (me, config): (&Booted, &Config),
    (action, verdict, units): (Action, Verdict, Vec<String>),
) -> Result<(), Error> {
    let ds = layout::read_deployments(&a.sysroot)?;
    let markers = BootCounting::read(&a.sysroot);
    let count = |d: &layout::Deployment| {
        if d.label() == me.label {
            Count::Bad { done: 0 }
        } else {
            markers.count(&counting::base_name(&d.stateroot, &d.id()))
        }
    };
    let target = rollback::target(&ds.list, &me.label, count);
    let running_kver = a.kernel_release.clone().unwrap_or_else(crate::mkinitramfs::running_kver);
    let ways = match target {
        Some(t) => rollback::ways(
            action,
            layout::has_modules_for(&a.sysroot, t, &running_kver),
            args.kexec != Kexec::Never,
        ),
        None => vec![Way::None],
    };
    let why = match verdict {
        Verdict::BadHealthCheck => format!("a health check failed: {}", names(&units)),
        Verdict::BadWatchdog => {
            format!("boot-complete.target not reached in time, still starting: {}", names(&units))
        }
        _ => "rolled back by hand".into(),
    };
    if a.dry_run {
        let to = target.map_or("nothing (no other deployment can boot)".into(), |t| t.label());
        rootstock_core::logger::stdout(&format!(
            "would mark {} bad ({why}), then roll back to {to} by: {}\n",
            me.label,
            ways.iter().map(Way::to_string).collect::<Vec<_>>().join(", then ")
        ));
        return Ok(());
    }
    // 1. Bad on disk first: whatever happens next (a power cut, a failed
    // soft reboot), the next boot falls back.
    let (base, change) = status::bless(&a.sysroot, &a.root, &a.run_dir, false, sys)?;
    match change {
        Some(c) => log::info!("{base} is now bad ({c})"),
        None => log::info!("{base} was already bad"),
    }
    // The boot loader's counter too, where it counts this boot's entry: its
    // next boot goes to the fallback's entry, not through this one again.
    let paths = (a.root.as_path(), a.run_dir.as_path(), a.esp.as_deref());
    let entry = me.state.as_ref().and_then(|b| b.loader_entry.as_deref());
    match crate::esp::bless_booted_entry(sys, paths, entry, false) {
        Ok(Some(done)) => {
            log::info!("{done}");
            // The mask in /run counts from the next daemon reload or soft
            // reboot; this systemd must not bless the entry either (its job
            // may still wait for boot-complete.target).
            if a.root.join(crate::esp::SYSTEMD_BLESS_BOOT).exists() {
                // (A failure to run systemctl is logged by `run`.)
                let _ = ctl.run(&["stop", "--no-block", "systemd-bless-boot.service"]);
            }
        }
        Ok(None) => {}
        // rootstock's marker is what the next boot honours already.
        Err(why) => log::warn!("boot loader entry: {why}"),
    }
    // 2. The fastest way that works.
    let mut done = Way::None;
    let mut notes = Vec::new();
    if let Some(t) = target {
        for way in &ways {
            match go(
                a,
                (args, config, &running_kver),
                t,
                *way,
                format!("{}: marked bad by rootstock rollback ({why})", me.label),
                sys,
            ) {
                Ok(()) => {
                    done = *way;
                    break;
                }
                Err(e) => {
                    log::error!("{way} into {}: {e}", t.label());
                    notes.push(format!("{way} failed: {e}"));
                }
            }
        }
    }
    let what = match (target, done) {
        (None, _) => "none: no other deployment can boot".to_string(),
        (Some(t), Way::None) if action == Action::Mark => {
            format!("none (rollback.action = mark): the next boot falls back to {}", t.label())
        }
        (Some(t), Way::None) => format!("none: every way failed; the next boot falls back to {}", t.label()),
        (Some(t), way) => format!("{way} into {}", t.label()),
    };
    let action_text = if notes.is_empty() { what.clone() } else { format!("{what} ({})", notes.join("; ")) };
    // 3. The evidence, before anything is started.
    let r = update_history(
        sys,
        &a.sysroot,
        |seq| Some(me.record(args, seq)),
        (&me.boot_id, &me.label),
        |r| {
            r.verdict = verdict;
            r.units = units.clone();
            r.action = action_text.clone();
        },
    );
    if let Err(e) = r {
        log::warn!("boot history: {e}: the rollback is not recorded");
    }
    log::info!("{}: {verdict}; {action_text}", me.label);
    // 4. Go.
    if done != Way::None {
        ctl.start(done).map_err(|why| Error::Rollback { why })?;
    }
    Ok(())
}

/// Prepare `way` into `t` (lay out the soft reboot, load the kernel).
fn go(
    a: &RollbackArgs,
    (args, config, running_kver): (&KernelArgs, &Config, &str),
    t: &layout::Deployment,
    way: Way,
    from: String,
    sys: &mut dyn System,
) -> Result<(), Error> {
    let kexec = match way {
        Way::SoftReboot => false,
        Way::Kexec => true,
        Way::Reboot | Way::None => return Ok(()),
    };
    let opts = Options {
        sysroot: a.sysroot.clone(),
        run: a.run_dir.clone(),
        nextroot: a.nextroot.clone(),
        boot: a.boot.clone(),
        request: Some(DeploymentChoice::Id(t.id())),
        config: config.clone(),
        running_kver: running_kver.to_string(),
        kexec,
        tries: args.tries,
        composefs: args.composefs,
        mountinfo: PathBuf::from("/proc/self/mountinfo"),
        rollback_from: Some(from),
    };
    match soft_reboot::prepare(&opts, sys)? {
        Prepared::LaidOut { .. } => log::info!("{} is laid out at {}", t.label(), a.nextroot.display()),
        Prepared::Kexec { image, .. } => {
            log::info!("{}: kernel {} loaded", t.label(), image.kernel.display())
        }
    }
    Ok(())
}
