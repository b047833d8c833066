//! Automatic rollback's decisions, for `rootstock rollback`: what the
//! health of the boot is (from what systemd says), where to roll back to,
//! and the fastest safe way there. Pure: the host tool asks systemd and
//! acts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::counting::Count;
use crate::layout::Deployment;

/// The watchdog's default: a deployment on probation that has not reached
/// `boot-complete.target` after this many seconds is rolled back.
pub const DEFAULT_WATCHDOG: u32 = 300;
/// The longest watchdog (a day).
pub const MAX_WATCHDOG: u32 = 86_400;

/// What to do about a deployment on probation that fails its health checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Action {
    /// Mark it bad and boot the fallback the fastest safe way: soft
    /// reboot when it runs on this kernel, kexec when its kernel differs,
    /// else a full reboot.
    #[default]
    Auto,
    /// Mark it bad and reboot (firmware, boot loader, initramfs).
    Reboot,
    /// Mark it bad only: the next reboot, whoever makes it, falls back.
    Mark,
    /// Nothing (the history still records the attempt).
    Off,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Auto => "auto",
            Action::Reboot => "reboot",
            Action::Mark => "mark",
            Action::Off => "off",
        })
    }
}

impl FromStr for Action {
    type Err = ();
    fn from_str(s: &str) -> Result<Action, ()> {
        match s {
            "auto" => Ok(Action::Auto),
            "reboot" => Ok(Action::Reboot),
            "mark" => Ok(Action::Mark),
            "off" => Ok(Action::Off),
            _ => Err(()),
        }
    }
}

/// The settings in force: the configuration's `[rollback]` (`action`,
/// `watchdog`), overridden by `rootstock.rollback=` and
/// `rootstock.rollback-watchdog=`. A bad kernel argument is reported and
/// the configuration's value kept.
pub fn settings(
    config: (Action, u32),
    args: &crate::cmdline::KernelArgs,
) -> (Action, Option<Duration>, Vec<String>) {
    let (config_action, config_watchdog) = config;
    let mut problems = Vec::new();
    let action = match args.rollback.as_deref().map(|v| (v, v.parse::<Action>())) {
        None => config_action,
        Some((_, Ok(a))) => a,
        Some((v, Err(()))) => {
            problems.push(format!(
                "rootstock.rollback={v}: not auto, reboot, mark or off; `{config_action}` from the configuration is used"
            ));
            config_action
        }
    };
    let secs = match args.rollback_watchdog.as_deref().map(|v| (v, v.parse::<u32>())) {
        None => config_watchdog,
        Some((_, Ok(n))) if n <= MAX_WATCHDOG => n,
        Some((v, _)) => {
            problems.push(format!(
                "rootstock.rollback-watchdog={v}: not seconds 0..={MAX_WATCHDOG}; {config_watchdog} s from the configuration is used"
            ));
            config_watchdog
        }
    };
    (action, (secs > 0).then(|| Duration::from_secs(secs.into())), problems)
}

/// What systemd says about the boot, once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The system is shutting down, rebooting, soft-rebooting or kexecing
    /// (`systemctl is-system-running`: stopping, or a job for one of their
    /// targets).
    pub stopping: bool,
    /// `boot-complete.target` is active, or was in this userspace (its
    /// `ActiveEnterTimestampMonotonic` is set: a shutdown stops it again).
    pub boot_complete: bool,
    /// `boot-complete.target` still has a start job.
    pub boot_complete_job: bool,
    /// Failed units among those `boot-complete.target` requires (else every
    /// failed unit).
    pub failed: Vec<String>,
    /// Units whose start jobs are running (for the watchdog's message).
    pub running: Vec<String>,
}

/// The targets whose jobs mean the system is going down: then
/// `boot-complete.target` is stopped, which is no verdict.
pub const SHUTDOWN_TARGETS: [&str; 6] = [
    "shutdown.target",
    "reboot.target",
    "poweroff.target",
    "halt.target",
    "kexec.target",
    "soft-reboot.target",
];

/// The boot's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Still starting: wait.
    Waiting,
    /// `boot-complete.target` was reached (`rootstock bless` does the rest).
    Healthy,
    /// Its start job failed: a health check failed. The failed units.
    Failed(Vec<String>),
    /// The watchdog's time passed first. The units still starting.
    Hung(Vec<String>),
    /// Shutting down: not a verdict on the deployment.
    Stopping,
}

/// Judge the boot from one observation, `elapsed` after the watch began.
pub fn judge(o: &Observation, elapsed: Duration, watchdog: Option<Duration>) -> Health {
    if o.stopping {
        Health::Stopping
    } else if o.boot_complete {
        Health::Healthy
    } else if !o.boot_complete_job {
        // Inactive with no job: the job ended without reaching it (a unit
        // it requires failed). rootstock-rollback.service Wants= the
        // target, so it is always in the boot's transaction.
        Health::Failed(o.failed.clone())
    } else if watchdog.is_some_and(|w| elapsed >= w) {
        Health::Hung(o.running.clone())
    } else {
        Health::Waiting
    }
}

/// Is a deployment in this counting state on probation: counted, not
/// blessed (`last_try`: booted on its last try, bad on disk)? Only those
/// are rolled back automatically: a blessed deployment's failing health
/// check is not a failed update, and a deployment nothing counts has no
/// fallback sequence to continue.
pub fn on_probation(count: Count, last_try: bool) -> bool {
    matches!(count, Count::Indeterminate { .. }) || (last_try && matches!(count, Count::Bad { .. }))
}

/// The deployment to roll back to: the first in ostree's order that is not
/// the booted one and not bad, as the next boot's fallback would be.
pub fn target<'a>(
    deployments: &'a [Deployment],
    booted: &str,
    count: impl Fn(&Deployment) -> Count,
) -> Option<&'a Deployment> {
    deployments.iter().find(|d| d.label() != booted && !matches!(count(d), Count::Bad { .. }))
}

/// How to get to the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    SoftReboot,
    Kexec,
    Reboot,
    /// Marked bad, nothing else (`mark`, or no fallback to go to).
    None,
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Way::SoftReboot => "soft reboot",
            Way::Kexec => "kexec",
            Way::Reboot => "reboot",
            Way::None => "none",
        })
    }
}

/// The ways to try, fastest first: under `auto`, a soft reboot when the
/// fallback has modules for the running kernel, kexec when it does not and
/// kexec is allowed (`rootstock.kexec=auto`), a reboot last (also when the
/// faster ways fail). `None` for `mark` and `off`.
pub fn ways(action: Action, same_kernel: bool, kexec_allowed: bool) -> Vec<Way> {
    match action {
        Action::Auto if same_kernel => vec![Way::SoftReboot, Way::Reboot],
        Action::Auto if kexec_allowed => vec![Way::Kexec, Way::Reboot],
        Action::Auto | Action::Reboot => vec![Way::Reboot],
        Action::Mark | Action::Off => vec![Way::None],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::KernelArgs;

    fn obs(boot_complete: bool, job: bool) -> Observation {
        Observation {
            boot_complete,
            boot_complete_job: job,
            failed: vec!["health.service".into()],
            running: vec!["slow.service".into()],
            ..Observation::default()
        }
    }

    #[test]
    fn the_boots_health() {
        let w = Some(Duration::from_secs(60));
        let (early, late) = (Duration::from_secs(5), Duration::from_secs(60));
        assert_eq!(judge(&obs(true, false), late, w), Health::Healthy);
        assert_eq!(judge(&obs(false, true), early, w), Health::Waiting);
        assert_eq!(judge(&obs(false, true), late, w), Health::Hung(vec!["slow.service".into()]));
        assert_eq!(judge(&obs(false, true), late * 100, None), Health::Waiting, "no watchdog");
        assert_eq!(judge(&obs(false, false), early, w), Health::Failed(vec!["health.service".into()]));
        let stopping = Observation { stopping: true, ..obs(false, false) };
        assert_eq!(judge(&stopping, late, w), Health::Stopping, "a shutdown is no verdict");
    }

    #[test]
    fn only_a_counted_unblessed_deployment_is_on_probation() {
        assert!(on_probation(Count::Indeterminate { left: 2, done: 1 }, false));
        assert!(on_probation(Count::Bad { done: 3 }, true), "booted on its last try");
        assert!(!on_probation(Count::Bad { done: 3 }, false));
        assert!(!on_probation(Count::Good, false));
        assert!(!on_probation(Count::Never, false), "nothing counts it");
    }

    #[test]
    fn the_fastest_safe_way() {
        assert_eq!(ways(Action::Auto, true, true), [Way::SoftReboot, Way::Reboot]);
        assert_eq!(ways(Action::Auto, false, true), [Way::Kexec, Way::Reboot]);
        assert_eq!(ways(Action::Auto, false, false), [Way::Reboot]);
        assert_eq!(ways(Action::Reboot, true, true), [Way::Reboot]);
        assert_eq!(ways(Action::Mark, true, true), [Way::None]);
    }

    #[test]
    fn kernel_arguments_override_the_configuration_and_bad_ones_do_not() {
        let config = (Action::Reboot, 120);
        let args = |line: &str| KernelArgs::parse(line).unwrap();
        assert_eq!(settings(config, &args("")), (Action::Reboot, Some(Duration::from_secs(120)), vec![]));
        let (a, w, p) = settings(config, &args("rootstock.rollback=mark rootstock.rollback-watchdog=0"));
        assert_eq!((a, w, p.len()), (Action::Mark, None, 0));
        let (a, w, p) = settings(config, &args("rootstock.rollback=maybe rootstock.rollback-watchdog=-1"));
        assert_eq!((a, w), (Action::Reboot, Some(Duration::from_secs(120))));
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(args("rootstock.rollback=maybe").unknown.is_empty(), "known to the boot, which ignores it");
    }
}
