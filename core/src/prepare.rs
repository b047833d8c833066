//! `prepare-root`: turn a mounted physical root into the deployment's root.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cmdline::Kexec;
use crate::cmdline::{Fallback, KernelArgs};
use crate::config::Config;
use crate::counting::{self, BootCounting, Change, Count};
use crate::errno::Errno;
use crate::layout::{self, Deployment, Deployments, LayoutError, Unbootable};
use crate::plan::{self, PrepareRoot, Purpose, Step};
use crate::seam::{KexecImage, Op, System};
use crate::select::{self, Unmatched};
use crate::state::{BootState, Reason};

/// Everything prepare-root takes from outside; every path is a parameter.
#[derive(Debug, Clone)]
pub struct Options {
    /// The physical root's mount point (`/sysroot`).
    pub sysroot: PathBuf,
    /// The runtime directory (`/run`).
    pub run: PathBuf,
    pub args: KernelArgs,
    pub config: Config,
    /// `init=` to check for (PID-1 mode); `None` checks the default inits.
    pub init: Option<String>,
    /// The running kernel's version, when a deployment without its modules
    /// may be booted by kexec into its own kernel (PID-1 mode).
    pub running_kver: Option<String>,
    /// After a kexec (`rootstock.kexeced=`), the first pass's state: what
    /// was requested and passed over before the kexec.
    pub carried: Option<BootState>,
    /// The entry the boot loader counts this boot (systemd-boot's
    /// `LoaderBootCountPath`, [`counting::loader_counted_entry`]): the
    /// requested deployment is then not counted again.
    pub loader_counted: Option<String>,
}

/// Why a candidate, or the request itself, was passed over. Each renders as
/// one line of the state file's `skipped=` and of the failure screen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// The boot loader entries could not be read at all.
    #[error(transparent)]
    NoEntries(LayoutError),
    /// The request (`ostree=`, `rootstock.deployment=`) matched nothing.
    #[error(transparent)]
    Unmatched(Unmatched),
    /// The deployment lacks what booting needs.
    #[error("{deployment}: {error}")]
    Unbootable {
        deployment: String,
        #[source]
        error: Unbootable,
    },
    /// Boot counting found it bad (it ran out of tries without a blessing).
    #[error("{deployment}: marked bad by boot counting ({count})")]
    MarkedBad { deployment: String, count: Count },
    /// The boot loader's own counter (systemd-boot's `+0-DONE` in the
    /// entry's name) ran out.
    #[error("{deployment}: marked bad by the boot loader's counter ({entry})")]
    LoaderBad { deployment: String, entry: String },
    /// A step of its mount plan failed (the mounts made were undone).
    #[error("{deployment}: step {number} ({purpose}) failed on {}: {errno}", target.display())]
    StepFailed { deployment: String, number: usize, purpose: Purpose, target: PathBuf, errno: Errno },
}

/// Nothing could be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct NothingBootable {
    pub requested: String,
    /// Each candidate tried and why it failed.
    pub tried: Vec<Skip>,
}

impl NothingBootable {
    fn render(&self) -> String {
        let mut s = format!("no deployment could be laid out (requested: {})", self.requested);
        if self.tried.is_empty() {
            s.push_str("; no deployment was found in /boot/loader/entries and ostree= named none");
        }
        for t in &self.tried {
            s.push_str(&format!("\n  - {t}"));
        }
        s
    }
}

/// What was laid out.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub deployment: Deployment,
    pub reason: Reason,
    pub state: BootState,
    pub plan: Vec<Step>,
    /// The boot-counting change made.
    pub counting: Option<Change>,
    /// Loaded with kexec_file_load instead of laid out: reboot into it.
    pub kexec: Option<KexecImage>,
}

/// The candidates in order, and what could not be a candidate.
pub struct Candidates {
    pub list: Vec<(Deployment, Reason)>,
    pub skipped: Vec<Skip>,
}

/// Read the layout and order the candidates (no side effects).
pub fn candidates(opts: &Options) -> Candidates {
    let mut skipped = Vec::new();
    let deployments = match layout::read_deployments(&opts.sysroot) {
        Ok(d) => d,
        Err(e) => {
            skipped.push(Skip::NoEntries(e));
            Deployments::default()
        }
    };
    for p in &deployments.problems {
        log::warn!("{p}");
    }
    let from_ostree = opts.args.ostree.as_ref().map(|arg| {
        let parsed = layout::parse_ostree_arg(arg)?;
        let (stateroot, csum, serial) = layout::resolve_ostree_arg(&opts.sysroot, arg)?;
        Ok(Deployment {
            index: 0,
            stateroot,
            csum,
            serial,
            bootcsum: parsed.bootcsum,
            bootserial: parsed.bootserial,
            ostree_arg: arg.clone(),
            entry: String::new(),
            version: String::new(),
            options: String::new(),
            linux: None,
            initrd: None,
        })
    });
    let c = select::candidates(&opts.args, &deployments, from_ostree);
    skipped.extend(c.skipped.into_iter().map(Skip::Unmatched));
    Candidates { list: c.list, skipped }
}

/// One run of prepare-root: what it reads once, and what it has passed over.
struct Run<'a> {
    opts: &'a Options,
    sys: &'a mut dyn System,
    counting: BootCounting,
    /// Tries a never-counted default deployment gets.
    tries: u32,
    requested: String,
    tried: Vec<Skip>,
}

/// Plan the first bootable candidate, record the boot attempt and execute
/// the plan through `sys`; on a failed step, undo and try the next
/// candidate. Candidates marked bad by boot counting are skipped; when every
/// bootable candidate is bad, the first of them boots anyway, with a warning.
/// `--dry-run` is this against a recorder.
pub fn run(opts: &Options, sys: &mut dyn System) -> Result<Outcome, NothingBootable> {
    let t = Instant::now();
    // `ostree config set sysroot.readonly true` on the physical root, which
    // ostree-prepare-root honours too, adds to rootstock.conf.
    let opts = &Options { config: opts.config.for_boot(opts.args.composefs, &opts.sysroot), ..opts.clone() };
    let Candidates { list, skipped } = candidates(opts);
    log::debug!("step selection: {} candidates in {:.2} ms", list.len(), ms(t));
    for s in &skipped {
        log::warn!("skipping {s}");
    }
    let mut run = Run {
        opts,
        sys,
        counting: BootCounting::read(&opts.sysroot),
        tries: opts.args.tries.unwrap_or(opts.config.boot_counting.tries),
        requested: select::describe_request(&opts.args),
        tried: skipped,
    };
    run.counting.repair(run.sys);
    log::debug!("step boot counting: markers read in {:.2} ms", ms(t));
    let honour_bad = opts.args.fallback == Fallback::Auto;
    let mut all_bad = Vec::new();
    for (d, reason) in list {
        // Bad by rootstock's marker or by the boot loader's own counter.
        let count = run.counting.count(&base(&d));
        let bad = if !honour_bad || reason == Reason::Manual {
            None
        } else if matches!(count, Count::Bad { .. }) {
            Some(Skip::MarkedBad { deployment: d.label(), count })
        } else if matches!(counting::loader_count(&d.entry), Some((0, _))) {
            Some(Skip::LoaderBad { deployment: d.label(), entry: d.entry.clone() })
        } else {
            None
        };
        if let Some(why) = bad {
            run.skip(why);
            all_bad.push((d, reason));
            continue;
        }
        if let Some(o) = run.attempt(d, reason) {
            return Ok(o);
        }
    }
    // Nothing else could boot: a deployment marked bad is better than none.
    if let Some((d, reason)) = all_bad.into_iter().next() {
        log::error!("every bootable deployment is marked bad: booting {} anyway", d.label());
        if let Some(o) = run.attempt(d, reason) {
            return Ok(o);
        }
    }
    Err(NothingBootable { requested: run.requested, tried: run.tried })
}

/// Milliseconds since `t`, for the debug log's step times.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn base(d: &Deployment) -> String {
    counting::base_name(&d.stateroot, &d.id())
}

impl Run<'_> {
    fn skip(&mut self, why: Skip) {
        match &why {
            Skip::StepFailed { .. } => log::error!("{why}"),
            _ => log::warn!("skipping {why}"),
        }
        self.tried.push(why);
    }

    /// Try one candidate: check → count → kexec decision → plan → execute.
    /// `None` (with the reason in `tried`) when it cannot boot.
    fn attempt(&mut self, d: Deployment, reason: Reason) -> Option<Outcome> {
        let t = Instant::now();
        let init = match layout::check_deployment(&self.opts.sysroot, &d, self.opts.init.as_deref()) {
            Ok(init) => init,
            Err(error) => {
                self.skip(Skip::Unbootable { deployment: d.label(), error });
                return None;
            }
        };
        let root = match crate::integrity::check(&self.opts.sysroot, &d, &self.opts.config) {
            Ok(root) => root,
            Err(error) => {
                self.skip(Skip::Unbootable { deployment: d.label(), error });
                return None;
            }
        };
        let hotfix = match layout::hotfix(&self.opts.sysroot, &d) {
            Ok(h) => h,
            Err(error) => {
                self.skip(Skip::Unbootable { deployment: d.label(), error });
                return None;
            }
        };
        let (change, count) = self.count(&d, reason);
        let kexec = kexec_image(self.opts, &d, reason);
        let state = self.boot_state(&d, reason, init, count);
        let layout =
            PrepareRoot::read(self.sys, &self.opts.sysroot, &self.opts.run, &d, &self.opts.config, root);
        // Booted away from the entry the boot loader counts: that entry must
        // not be blessed by this boot's success.
        let mask_bless_boot = self.opts.loader_counted.is_some() && state.loader_entry.is_none();
        if mask_bless_boot {
            log::warn!(
                "the boot loader counts this boot against {}, which is not the deployment booted: \
                 systemd-bless-boot is masked for this boot",
                self.opts.loader_counted.as_deref().unwrap_or_default()
            );
        }
        let steps =
            plan::prepare_root(&PrepareRoot { hotfix, state: state.render(), mask_bless_boot, ..layout });
        let mut outcome = Outcome { deployment: d, reason, state, plan: steps, counting: change, kexec };
        log::debug!("step check and plan {}: {:.2} ms", outcome.deployment.label(), ms(t));
        if !self.execute(&mut outcome) {
            return None;
        }
        let (level, message) = booting_message(
            &outcome.deployment.label(),
            outcome.deployment.index,
            reason,
            self.opts.args.kexeced,
        );
        log::log!(level, "{message}");
        Some(outcome)
    }

    /// The boot-counting change this attempt makes, and the count it leaves.
    /// A manual choice counts no tries; only the default gets armed; the
    /// second pass after a kexec was counted before the kexec; an entry the
    /// boot loader counts (`+LEFT-DONE`) is not counted twice.
    fn count(&self, d: &Deployment, reason: Reason) -> (Option<Change>, Count) {
        let base = base(d);
        let by_loader = match &self.opts.loader_counted {
            Some(path) if self.loaders_entry(reason) => Some(path.as_str()),
            _ => counting::loader_count(&d.entry).map(|_| d.entry.as_str()),
        };
        if let Some(entry) = by_loader {
            log::info!("boot counting: {entry} is counted by the boot loader: rootstock counts nothing");
            return (None, self.counting.count(&base));
        }
        match (reason, self.opts.args.kexeced) {
            (Reason::Manual, _) | (_, Some(_)) => (None, self.counting.count(&base)),
            _ => self.counting.attempt(&base, self.tries, d.index == 0 && reason == Reason::Default),
        }
    }

    /// Whether a deployment chosen for `reason` is the one the boot loader's
    /// entry boots: what `ostree=` names, and no fallback before a kexec.
    fn loaders_entry(&self, reason: Reason) -> bool {
        reason == Reason::Default && matches!(self.opts.args.kexeced, None | Some(Reason::Default))
    }

    /// What /run/rootstock/state will hold, or, before a kexec, what the
    /// second pass gets. After a kexec the request and the candidates
    /// passed over are the first pass's: this pass was asked for the
    /// fallback by name.
    fn boot_state(&self, d: &Deployment, reason: Reason, init: String, count: Count) -> BootState {
        let tried = self.tried.iter().map(|s| s.to_string());
        let (requested, skipped) = match &self.opts.carried {
            Some(first) if !first.requested.is_empty() => {
                (first.requested.clone(), first.skipped.iter().cloned().chain(tried).collect())
            }
            _ => (self.requested.clone(), tried.collect()),
        };
        BootState {
            requested,
            selected: d.label(),
            index: d.index,
            reason: self.opts.args.kexeced.unwrap_or(reason),
            init,
            counting: count,
            skipped,
            loader_entry: (self.opts.loader_counted.as_ref())
                .filter(|_| self.loaders_entry(reason))
                .map(|p| p.replace('\\', "/")),
        }
    }

    /// Record the attempt, then kexec or lay out. False (with the failed step
    /// in `tried`, its mounts undone) when the plan failed.
    fn execute(&mut self, o: &mut Outcome) -> bool {
        let t = Instant::now();
        if o.counting.is_some() {
            let recorded =
                self.counting.record(self.sys, &base(&o.deployment), o.counting.take(), "this boot");
            if recorded.change.is_none() {
                // The state says what is on disk, not the change that failed.
                o.state.counting = recorded.count;
                let text = o.state.render();
                for s in o.plan.iter_mut().filter(|s| s.purpose == plan::Purpose::WriteState) {
                    if let Op::WriteFile { contents, .. } = &mut s.op {
                        *contents = text.clone().into();
                    }
                }
            }
            o.counting = recorded.change;
            log::debug!("step boot counting: written in {:.2} ms", ms(t));
        }
        if let Some(k) = &mut o.kexec {
            k.carry = Some(o.state.render());
            match self.sys.execute(&Op::KexecLoad(k.clone())) {
                Ok(()) => {
                    log::warn!(
                        "booting {} with its own kernel {} (kexec)",
                        o.deployment.label(),
                        k.kernel.display()
                    );
                    o.plan.clear();
                    return true;
                }
                Err(e) => {
                    log::error!(
                        "kexec_file_load {}: {e}{}: booting {} on the running kernel",
                        k.kernel.display(),
                        kexec_refusal_hint(e),
                        o.deployment.label()
                    );
                    o.kexec = None;
                }
            }
        }
        let t = Instant::now();
        let result = plan::run_plan(self.sys, &o.plan);
        log::debug!("step layout: {} steps in {:.2} ms", o.plan.len(), ms(t));
        if let Err(plan::StepFailed { number, step, errno }) = result {
            self.skip(Skip::StepFailed {
                deployment: o.deployment.label(),
                number,
                purpose: step.purpose,
                target: step.op.target().to_path_buf(),
                errno,
            });
            return false;
        }
        true
    }
}

/// Why the kernel may have refused a kexec, for the errnos that name a
/// policy rather than a broken file.
fn kexec_refusal_hint(e: Errno) -> &'static str {
    match e {
        // kexec_file_load under lockdown (Secure Boot turns it on) without a
        // signature the kernel trusts, or kexec disabled by sysctl.
        Errno::PERM => {
            " (refused by the kernel: lockdown without a trusted signature, see \
               /sys/kernel/security/lockdown, or kernel.kexec_load_disabled)"
        }
        // No kexec_file_load in this kernel: CONFIG_KEXEC_FILE off, as in
        // Debian 12's arm64 kernel (its amd64 one has it).
        Errno::NOSYS => " (this kernel has no kexec_file_load: CONFIG_KEXEC_FILE is off)",
        // The kernel's own signature check failed (KEXEC_SIG_FORCE, or
        // lockdown): unsigned, malformed, or signed by a key the running
        // kernel does not trust (ENOKEY).
        Errno::NODATA | Errno::BADMSG | Errno::NOKEY | Errno::KEYREJECTED => {
            " (the kernel rejected the image's signature)"
        }
        // IMA appraisal (or another security module) refused the file.
        Errno::ACCESS => " (refused by a security policy such as IMA appraisal)",
        _ => "",
    }
}

/// What the console says when `d` is laid out. After a kexec the reason is
/// the first pass's (`rootstock.kexeced=`), as in the state file: the second
/// pass of a fallback finds its deployment through `ostree=` like a default.
fn booting_message(
    label: &str,
    index: usize,
    reason: Reason,
    kexeced: Option<Reason>,
) -> (log::Level, String) {
    let after_kexec = if kexeced.is_some() { ", in its own kernel after kexec" } else { "" };
    match kexeced.unwrap_or(reason) {
        Reason::Fallback => {
            (log::Level::Warn, format!("booting fallback deployment {label} (index {index}{after_kexec})"))
        }
        shown => (log::Level::Info, format!("booting {label} (index {index}, {shown}{after_kexec})")),
    }
}

/// The kexec to do instead of laying out `d`: in PID-1 mode, when `d` has no
/// modules for the running kernel (it was built for another kernel), boot
/// its own kernel and initramfs from its boot loader entry.
fn kexec_image(opts: &Options, d: &Deployment, reason: Reason) -> Option<KexecImage> {
    let kver = opts.running_kver.as_ref()?;
    if opts.args.kexeced.is_some() {
        return None; // already in the deployment's own kernel
    }
    if layout::has_modules_for(&opts.sysroot, d, kver) {
        return None;
    }
    let boot = opts.sysroot.join("boot");
    let find = |p: &Option<String>| {
        p.as_ref().and_then(|p| layout::resolve_path(&boot, Path::new(p)).ok()).map(|rel| boot.join(rel))
    };
    match (opts.args.kexec, find(&d.linux)) {
        (Kexec::Never, _) => {
            log::warn!(
                "{} has no modules for the running kernel {kver}; rootstock.kexec=never: booting it anyway",
                d.label()
            );
            None
        }
        (Kexec::Auto, None) => {
            log::warn!(
                "{} has no modules for the running kernel {kver} and no kernel in its boot loader entry: \
                 booting it on the running kernel",
                d.label()
            );
            None
        }
        (Kexec::Auto, Some(kernel)) => Some(KexecImage {
            kernel,
            initrd: find(&d.initrd),
            cmdline: format!("{} rootstock.kexeced={reason}", d.options),
            carry: None,
        }),
    }
}

/// Is `path` a mount point? (Its device differs from its parent's, or it is
/// the root.) Used to refuse a sysroot that is just a directory.
pub fn is_mount_point(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata(path)?;
    let parent = std::fs::metadata(path.join(".."))?;
    Ok(me.dev() != parent.dev() || me.ino() == parent.ino() || mountinfo_has(path))
}

/// A bind mount of a directory of the same filesystem has the same device as
/// its parent, so also look it up in `/proc/self/mountinfo`.
fn mountinfo_has(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else { return false };
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    text.lines().any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_kexec_says_why_for_policy_errnos_only() {
        let said = |n| {
            format!(
                "kexec_file_load /boot/vmlinuz: {}{}",
                Errno::from_raw(n),
                kexec_refusal_hint(Errno::from_raw(n))
            )
        };
        assert!(
            said(1).starts_with("kexec_file_load /boot/vmlinuz: EPERM 1 (Operation not permitted) (refused")
        );
        assert!(said(1).contains("/sys/kernel/security/lockdown"), "{}", said(1));
        assert!(said(129).contains("EKEYREJECTED 129") && said(129).contains("signature"), "{}", said(129));
        assert!(said(38).contains("no kexec_file_load"), "{}", said(38));
        assert!(said(126).contains("ENOKEY 126") && said(126).contains("signature"), "{}", said(126));
        assert!(said(13).contains("EACCES 13") && said(13).contains("IMA"), "{}", said(13));
        // A broken or missing file is said by its errno alone.
        assert_eq!(kexec_refusal_hint(Errno::NOENT), "");
        assert_eq!(kexec_refusal_hint(Errno::NOEXEC), "");
    }

    #[test]
    fn each_skip_names_what_it_passed_over_once() {
        use std::path::Path;
        let arg = "/ostree/boot.0/os/ab/0";
        let missing =
            crate::resolve::ResolveError::Missing { at: "ostree/boot.0".into(), errno: Errno::NOENT };
        let ostree =
            Skip::Unmatched(Unmatched::Ostree(LayoutError::Resolve { arg: arg.into(), error: missing }));
        assert_eq!(
            ostree.to_string(),
            "ostree=/ostree/boot.0/os/ab/0: /ostree/boot.0: ENOENT 2 (No such file or directory)"
        );
        let index =
            Skip::Unmatched(Unmatched::NoSuchIndex { request: "rootstock.deployment=3".into(), count: 2 });
        assert_eq!(index.to_string(), "rootstock.deployment=3: there are only 2 deployments");
        let bad = Skip::MarkedBad { deployment: "os/a.0".into(), count: Count::Bad { done: 3 } };
        assert_eq!(bad.to_string(), "os/a.0: marked bad by boot counting (bad (3 tries failed))");
        let step = Skip::StepFailed {
            deployment: "os/a.0".into(),
            number: 10,
            purpose: Purpose::WriteOstreeBooted,
            target: Path::new("/run/ostree-booted").into(),
            errno: Errno::ROFS,
        };
        assert_eq!(
            step.to_string(),
            "os/a.0: step 10 (write /run/ostree-booted) failed on /run/ostree-booted: EROFS 30 (Read-only file system)"
        );
    }

    #[test]
    fn the_second_pass_of_a_fallback_kexec_says_fallback() {
        let cases = [
            (Reason::Default, None, log::Level::Info, "booting os/a.0 (index 0, default)"),
            (Reason::Manual, None, log::Level::Info, "booting os/a.0 (index 0, manual)"),
            (Reason::Fallback, None, log::Level::Warn, "booting fallback deployment os/a.0 (index 0)"),
            // ostree= of the fallback's own entry: found as a default, but a fallback boot.
            (
                Reason::Default,
                Some(Reason::Fallback),
                log::Level::Warn,
                "booting fallback deployment os/a.0 (index 0, in its own kernel after kexec)",
            ),
            (
                Reason::Default,
                Some(Reason::Default),
                log::Level::Info,
                "booting os/a.0 (index 0, default, in its own kernel after kexec)",
            ),
        ];
        for (reason, kexeced, level, text) in cases {
            assert_eq!(
                booting_message("os/a.0", 0, reason, kexeced),
                (level, text.to_string()),
                "{kexeced:?}"
            );
        }
    }

    use crate::layout::tests::{C1, C2, sysroot};
    use crate::seam::fake::{Call, Recorder};

    /// Did the recorder see the new root moved onto the sysroot?
    fn laid_out(r: &Recorder) -> bool {
        r.operations().any(|op| matches!(op, Op::Move { .. }))
    }

    fn opts(root: &Path, cmdline: &str, kver: Option<&str>) -> Options {
        Options {
            sysroot: root.to_path_buf(),
            run: root.join("run"),
            args: KernelArgs::parse(cmdline).unwrap(),
            config: Config::default(),
            init: None,
            running_kver: kver.map(str::to_string),
            carried: None,
            loader_counted: None,
        }
    }

    /// Deployment `csum` built for kernel 6.1.0-a only (its modules), with
    /// its own kernel and initramfs in /boot as its BLS entry names them.
    fn built_for_kernel_a(root: &Path, csum: &str) {
        std::fs::create_dir_all(
            root.join(format!("ostree/deploy/os/deploy/{csum}.0/usr/lib/modules/6.1.0-a")),
        )
        .unwrap();
        std::fs::create_dir_all(root.join(format!("boot/ostree/os-{csum}"))).unwrap();
        std::fs::write(root.join(format!("boot/ostree/os-{csum}/vmlinuz")), "k").unwrap();
        std::fs::write(root.join(format!("boot/ostree/os-{csum}/initramfs.img")), "i").unwrap();
    }

    #[test]
    fn an_entry_the_boot_loader_counts_is_not_counted_twice_and_its_zero_is_bad() {
        let t = sysroot();
        let root = t.path();
        let entries = root.join("boot/loader.1/entries");
        let arg = format!("ostree=/ostree/boot.1/os/{C2}/0 rootstock.tries=3");
        // systemd-boot took a try (+3 → +2-1) before booting it.
        std::fs::rename(entries.join("ostree-2-os.conf"), entries.join("ostree-2-os+2-1.conf")).unwrap();
        let mut r = Recorder::new();
        let o = run(&opts(root, &arg, None), &mut r).unwrap();
        assert_eq!(o.state.selected, format!("os/{C2}.0"));
        assert_eq!(o.counting, None, "no marker of rootstock's: the boot loader counts it");
        assert!(!r.operations().any(|op| matches!(op, Op::CreateExclusive { .. })), "{:?}", r.lines());
        // Its tries ran out: the next in ostree's order boots, saying why.
        std::fs::rename(entries.join("ostree-2-os+2-1.conf"), entries.join("ostree-2-os+0-3.conf")).unwrap();
        let mut r = Recorder::new();
        let o = run(&opts(root, &arg, None), &mut r).unwrap();
        assert_eq!(o.state.selected, format!("os/{C1}.0"));
        assert_eq!(o.state.reason, Reason::Fallback);
        assert!(
            o.state.skipped[0].ends_with("marked bad by the boot loader's counter (ostree-2-os+0-3.conf)"),
            "{:?}",
            o.state.skipped
        );
        // A manual choice boots it all the same.
        let manual = format!("{arg} rootstock.deployment=0");
        let o = run(&opts(root, &manual, None), &mut Recorder::new()).unwrap();
        assert_eq!(o.state.selected, format!("os/{C2}.0"));
        // The entries on the physical root carry no counter (systemd-boot
        // counts the ESP's), but its EFI variable says it counts this boot.
        std::fs::rename(entries.join("ostree-2-os+0-3.conf"), entries.join("ostree-2-os.conf")).unwrap();
        let mut o2 = opts(root, &arg, None);
        o2.loader_counted = Some("\\loader\\entries\\ostree-2-os+2-1.conf".into());
        let mut r = Recorder::new();
        let o = run(&o2, &mut r).unwrap();
        assert_eq!((o.state.selected, o.counting), (format!("os/{C2}.0"), None));
        let o = run(&opts(root, &arg, None), &mut Recorder::new()).unwrap();
        assert!(o.counting.is_some(), "without the variable rootstock counts it");
    }

    /// The entry systemd-boot counts is named in the state when it is the
    /// one booted (`rootstock bless` renames it where systemd-bless-boot is
    /// absent); when rootstock falls back from it, systemd-bless-boot is
    /// masked for the boot, so the fallback's success does not bless it.
    #[test]
    fn the_counted_entry_is_blessed_only_by_a_boot_of_its_own_deployment() {
        let t = sysroot();
        let root = t.path();
        let path = "\\loader\\entries\\ostree-2-os+2-1.conf";
        let mut o2 = opts(root, &format!("ostree=/ostree/boot.1/os/{C2}/0"), None);
        o2.loader_counted = Some(path.into());
        let mask = |r: &Recorder| {
            r.operations().any(|op| {
                matches!(op, Op::Symlink { path, target }
                    if path.ends_with("systemd/system/systemd-bless-boot.service") && target == Path::new("/dev/null"))
            })
        };
        let mut r = Recorder::new();
        let o = run(&o2, &mut r).unwrap();
        assert_eq!(o.state.loader_entry.as_deref(), Some("/loader/entries/ostree-2-os+2-1.conf"));
        assert!(o.state.render().contains("\nloader_entry=/loader/entries/ostree-2-os+2-1.conf\n"));
        assert!(!mask(&r), "{:?}", r.lines());
        // The default has no init: rootstock boots the next one.
        std::fs::remove_file(root.join(format!("ostree/deploy/os/deploy/{C2}.0/usr/sbin/init"))).unwrap();
        let mut r = Recorder::new();
        let o = run(&o2, &mut r).unwrap();
        assert_eq!(
            (o.state.selected.as_str(), o.state.reason),
            (format!("os/{C1}.0").as_str(), Reason::Fallback)
        );
        assert_eq!(o.state.loader_entry, None);
        assert!(mask(&r), "{:?}", r.lines());
        // Without the variable nothing is masked.
        let mut r = Recorder::new();
        run(&opts(root, &format!("ostree=/ostree/boot.1/os/{C2}/0"), None), &mut r).unwrap();
        assert!(!mask(&r), "{:?}", r.lines());
    }

    #[test]
    fn a_fallback_by_kexec_keeps_the_first_passes_request_and_skips() {
        let t = sysroot();
        let root = t.path();
        // The default (C2) has no init: the fallback is C1, for kernel a.
        std::fs::remove_file(root.join(format!("ostree/deploy/os/deploy/{C2}.0/usr/sbin/init"))).unwrap();
        built_for_kernel_a(root, C1);
        let first_arg = format!("ostree=/ostree/boot.1/os/{C2}/0");

        let mut r = Recorder::new();
        let o = run(&opts(root, &first_arg, Some("6.1.0-b")), &mut r).unwrap();
        let k = &r.kexec_images()[0];
        assert_eq!(
            k.cmdline,
            format!("root=LABEL=r rw ostree=/ostree/boot.1/os/{C1}/0 rootstock.kexeced=fallback")
        );
        let carry = k.carry.as_deref().expect("the first pass's state rides along");
        assert_eq!(carry, o.state.render());
        let first = BootState::parse(carry).unwrap();
        assert_eq!(first.requested, first_arg);
        assert_eq!(first.skipped.len(), 1);
        assert!(first.skipped[0].starts_with(&format!("os/{C2}.0: ")), "{:?}", first.skipped);

        // The second pass, started by the fallback's own BLS options: its
        // state names the first pass's request and what it passed over.
        let mut second = opts(root, &k.cmdline, Some("6.1.0-a"));
        second.carried = Some(first.clone());
        let mut r = Recorder::new();
        let o = run(&second, &mut r).unwrap();
        assert!(r.kexec_images().is_empty() && laid_out(&r));
        assert_eq!(o.state.selected, format!("os/{C1}.0"));
        assert_eq!(o.state.reason, Reason::Fallback);
        assert_eq!(o.state.requested, first_arg);
        assert_eq!(o.state.skipped, first.skipped);

        // Without the carried state (an initramfs loaded without it) the
        // second pass still boots the fallback, naming its own request.
        let mut r = Recorder::new();
        let o = run(&opts(root, &k.cmdline, Some("6.1.0-a")), &mut r).unwrap();
        assert_eq!(o.state.reason, Reason::Fallback);
        assert_eq!(o.state.requested, format!("ostree=/ostree/boot.1/os/{C1}/0"));
    }

    #[test]
    fn kexec_into_a_deployment_built_for_another_kernel() {
        let t = sysroot();
        let root = t.path();
        // Deployment 0 (C2) has modules for 6.1.0-a only; its BLS kernel exists.
        built_for_kernel_a(root, C2);
        let arg = format!("ostree=/ostree/boot.1/os/{C2}/0");

        // Same kernel: laid out, no kexec.
        let mut r = Recorder::new();
        let o = run(&opts(root, &arg, Some("6.1.0-a")), &mut r).unwrap();
        assert!(o.kexec.is_none() && r.kexec_images().is_empty() && laid_out(&r));

        // Another kernel: loaded with kexec, nothing mounted, the attempt counted.
        let mut r = Recorder::new();
        let o = run(&opts(root, &format!("{arg} rootstock.tries=2"), Some("6.1.0-b")), &mut r).unwrap();
        let markers = root.join("ostree/rootstock");
        let k = &r.kexec_images()[0];
        let ops: Vec<Op> = r.operations().cloned().collect();
        assert_eq!(
            ops,
            [
                Op::Mkdir { path: markers.clone() },
                Op::FsyncDir { path: root.join("ostree") },
                Op::SyncFs { path: root.join("ostree") },
                Op::CreateExclusive { dir: markers.clone(), name: format!("os-{C2}.0+01-01") },
                Op::FsyncDir { path: markers.clone() },
                Op::SyncFs { path: markers },
                Op::KexecLoad(k.clone()),
            ],
            "counted, then loaded; nothing mounted"
        );
        assert_eq!(k.kernel, root.join(format!("boot/ostree/os-{C2}/vmlinuz")));
        assert_eq!(
            k.initrd.as_deref(),
            Some(root.join(format!("boot/ostree/os-{C2}/initramfs.img")).as_path())
        );
        assert_eq!(k.cmdline, format!("root=LABEL=r rw {arg} rootstock.kexeced=default"));
        assert_eq!(o.kexec.as_ref(), Some(k));
        assert!(matches!(o.counting, Some(Change::Create { .. })));

        // The second pass, in the deployment's own kernel: no kexec, no count.
        let mut r = Recorder::new();
        let o = run(
            &opts(root, &format!("{arg} rootstock.tries=2 rootstock.kexeced=fallback"), Some("6.1.0-b")),
            &mut r,
        )
        .unwrap();
        assert!(r.kexec_images().is_empty() && laid_out(&r));
        assert_eq!(o.counting, None);
        assert_eq!(o.state.reason, Reason::Fallback);

        // rootstock.kexec=never: boots on the running kernel.
        let mut r = Recorder::new();
        let o = run(&opts(root, &format!("{arg} rootstock.kexec=never"), Some("6.1.0-b")), &mut r).unwrap();
        assert!(o.kexec.is_none() && r.kexec_images().is_empty() && laid_out(&r));

        // Deployment 1 (C1) has no kernel file: boots on the running kernel.
        let mut r = Recorder::new();
        let o =
            run(&opts(root, &format!("ostree=/ostree/boot.1/os/{C1}/0"), Some("6.1.0-b")), &mut r).unwrap();
        assert!(o.kexec.is_none() && laid_out(&r));
    }

    #[test]
    fn a_hotfixed_deployment_gets_its_overlay_and_a_broken_one_falls_back() {
        use crate::layout::{HOTFIX_UPPER, HOTFIX_WORK};
        let t = sysroot();
        let root = t.path();
        let d2 = root.join(format!("ostree/deploy/os/deploy/{C2}.0"));
        let tmp = plan::staging_dir(root);
        std::fs::create_dir(d2.join(HOTFIX_UPPER)).unwrap();
        std::fs::create_dir(d2.join(HOTFIX_WORK)).unwrap();
        let arg = format!("ostree=/ostree/boot.1/os/{C2}/0");
        let overlay = Op::Overlay {
            target: tmp.join("usr"),
            lower: tmp.join("usr"),
            upper: tmp.join(HOTFIX_UPPER),
            work: tmp.join(HOTFIX_WORK),
        };

        // A writable physical root: the overlay, no remount.
        let mut r = Recorder::new();
        let o = run(&opts(root, &arg, None), &mut r).unwrap();
        assert_eq!(o.state.selected, format!("os/{C2}.0"));
        let ops: Vec<&Op> = r.operations().collect();
        assert!(ops.contains(&&overlay), "{ops:#?}");
        assert!(!ops.iter().any(|op| matches!(op, Op::Remount { target, .. } if target == &tmp.join("usr"))));
        assert!(!ops.iter().any(|op| matches!(op, Op::Remount { bind: false, .. })));

        // A read-only one: remounted read-write (the filesystem) before the
        // overlay, and the /etc and /var binds made writable.
        let mut r = Recorder::new().with_read_only(root, true);
        let mut ro = opts(root, &arg, None);
        ro.run = PathBuf::from("/run");
        run(&ro, &mut r).unwrap();
        let ops: Vec<Op> = r.operations().cloned().collect();
        let at = |want: &Op| {
            ops.iter().position(|op| op == want).unwrap_or_else(|| panic!("{want:?} in {ops:#?}"))
        };
        let rw = at(&Op::Remount { target: tmp.clone(), bind: false, read_only: false });
        assert_eq!(at(&overlay), rw + 1);
        at(&Op::Remount { target: tmp.join("etc"), bind: true, read_only: false });
        at(&Op::Remount { target: tmp.join("var"), bind: true, read_only: false });

        // The upper directory gone: a clear reason, and the rollback boots.
        std::fs::remove_dir(d2.join(HOTFIX_UPPER)).unwrap();
        let mut r = Recorder::new();
        let o = run(&opts(root, &arg, None), &mut r).unwrap();
        assert_eq!(o.state.selected, format!("os/{C1}.0"));
        assert_eq!(o.state.reason, Reason::Fallback);
        assert!(o.state.skipped[0].contains(".usr-ovl-upper is missing"), "{:?}", o.state.skipped);
        assert!(!r.operations().any(|op| matches!(op, Op::Overlay { .. })), "the rollback is locked");
    }

    #[test]
    fn sysroot_readonly_from_the_repository_config() {
        let t = sysroot();
        let root = t.path();
        let arg = format!("ostree=/ostree/boot.1/os/{C2}/0");
        let sysroot_mount = plan::staging_dir(root).join("sysroot");
        let remounted_ro = |r: &Recorder| {
            r.operations().any(|op| {
                matches!(op, Op::Remount { target, bind: true, read_only: true } if *target == sysroot_mount)
            })
        };
        let mut r = Recorder::new();
        run(&opts(root, &arg, None), &mut r).unwrap();
        assert!(!remounted_ro(&r));
        std::fs::create_dir_all(root.join("ostree/repo")).unwrap();
        std::fs::write(root.join("ostree/repo/config"), "[core]\nmode=bare\n\n[sysroot]\nreadonly=true\n")
            .unwrap();
        let mut r = Recorder::new();
        run(&opts(root, &arg, None), &mut r).unwrap();
        assert!(remounted_ro(&r));
        assert!(
            r.operations().any(
                |op| matches!(op, Op::WriteFile { path, .. } if path.ends_with("ostree-sysroot-ro.stamp"))
            )
        );
    }

    #[test]
    fn a_failed_marker_write_leaves_the_state_saying_what_is_on_disk() {
        let t = sysroot();
        let root = t.path();
        let arg = format!("ostree=/ostree/boot.1/os/{C2}/0 rootstock.tries=3");
        for errno in [Errno::ROFS, Errno::NOSPC, Errno::IO, Errno::ACCESS] {
            let mut r = Recorder::failing_on(|c| matches!(c, Call::Op(Op::CreateExclusive { .. })), errno);
            let o = run(&opts(root, &arg, None), &mut r).unwrap();
            assert_eq!(o.state.counting, Count::Never, "{errno}: nothing was written");
            assert!(o.counting.is_none(), "{errno}");
            let written = o
                .plan
                .iter()
                .find_map(|s| match (&s.purpose, &s.op) {
                    (plan::Purpose::WriteState, Op::WriteFile { contents, .. }) => Some(contents.text()),
                    _ => None,
                })
                .unwrap();
            assert_eq!(BootState::parse(&written).unwrap().counting, Count::Never, "{errno}: {written}");
            assert!(laid_out(&r), "{errno}: booting uncounted beats not booting");
        }
        // Without a failure the state counts the try.
        let mut r = Recorder::new();
        let o = run(&opts(root, &arg, None), &mut r).unwrap();
        assert_ne!(o.state.counting, Count::Never);
    }

    /// The mounts left after `ops`: binds and overlays add one, a move
    /// carries a tree, a detach removes a tree.
    fn mounts_left<'a>(ops: impl Iterator<Item = &'a Op>) -> Vec<PathBuf> {
        let mut table: Vec<PathBuf> = Vec::new();
        for op in ops {
            match op {
                Op::Bind { target, .. } | Op::Overlay { target, .. } => table.push(target.clone()),
                Op::Move { source, target } => {
                    for m in table.iter_mut().filter(|m| m.starts_with(source)) {
                        *m = target.join(m.strip_prefix(source).unwrap());
                    }
                }
                Op::Detach { target } => table.retain(|m| !m.starts_with(target)),
                _ => {}
            }
        }
        table
    }

    /// The operations that took effect: every one but the failed `n`-th call.
    fn made(r: &Recorder, n: usize) -> impl Iterator<Item = &Op> {
        r.calls.iter().enumerate().filter(move |(i, _)| *i + 1 != n).filter_map(|(_, c)| match c {
            Call::Op(op) => Some(op),
            Call::Query(_) => None,
        })
    }

    #[test]
    fn each_step_failed_in_turn_leaves_only_the_booted_plans_mounts() {
        let t = sysroot();
        let root = t.path();
        let o = opts(root, &format!("ostree=/ostree/boot.1/os/{C2}/0 rootstock.tries=3"), None);
        let mut clean = Recorder::new();
        run(&o, &mut clean).unwrap();
        let calls = clean.calls.len();
        let errnos =
            [Errno::ROFS, Errno::NOSPC, Errno::INVAL, Errno::PERM, Errno::BUSY, Errno::NOENT, Errno::IO];
        let mut fell_back = 0;
        for n in 1..=calls {
            for errno in errnos {
                let mut r = Recorder::failing_at(n, errno);
                let what = format!("call {n} ({}) failed with {errno}", clean.calls[n - 1]);
                match run(&o, &mut r) {
                    Ok(out) => {
                        let want = mounts_left(out.plan.iter().map(|s| &s.op));
                        assert_eq!(mounts_left(made(&r, n)), want, "{what}: only the booted plan's mounts");
                        if out.state.reason == Reason::Fallback {
                            fell_back += 1;
                            // The failed step is named in what was passed over.
                            assert!(
                                out.state.skipped.iter().any(|s| s.contains(&errno.to_string())),
                                "{what}: {:?}",
                                out.state.skipped
                            );
                        }
                    }
                    Err(e) => assert_eq!(mounts_left(made(&r, n)), Vec::<PathBuf>::new(), "{what}: {e}"),
                }
            }
        }
        assert!(fell_back > 0, "some failures fall back to the rollback");
    }
}
