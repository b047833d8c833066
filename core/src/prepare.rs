//! `prepare-root`: turn a mounted physical root into the deployment's root.

use std::path::{Path, PathBuf};

use crate::cmdline::Kexec;
use crate::cmdline::{Fallback, KernelArgs};
use crate::config::Config;
use crate::counting::{self, Change, Count, MarkerDir, Markers, apply_writable};
use crate::errno::Errno;
use crate::layout::{self, Deployment, Deployments};
use crate::plan::{self, PrepareRoot, Step};
use crate::seam::{self, KexecImage, StepFailed, System};
use crate::select::{self, Reason};
use crate::state::BootState;

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
}

/// Nothing could be laid out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct NothingBootable {
    pub requested: String,
    /// Each candidate tried and why it failed.
    pub tried: Vec<String>,
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
    /// The boot-counting change made (or, in a dry run, to be made).
    pub counting: Option<Change>,
    /// Loaded with kexec_file_load instead of laid out: reboot into it.
    pub kexec: Option<KexecImage>,
}

/// The candidates in order, and notes on what could not be a candidate.
pub struct Candidates {
    pub list: Vec<(Deployment, Reason)>,
    pub notes: Vec<String>,
}

/// Read the layout and order the candidates (no side effects).
pub fn candidates(opts: &Options) -> Candidates {
    let mut notes = Vec::new();
    let deployments = match layout::read_deployments(&opts.sysroot) {
        Ok(d) => d,
        Err(e) => {
            notes.push(format!("{e}"));
            Deployments::default()
        }
    };
    for p in &deployments.problems {
        log::warn!("{p}");
    }
    let from_ostree = opts.args.ostree.as_ref().map(|arg| {
        let parsed = layout::parse_ostree_arg(arg).map_err(|e| e.to_string())?;
        let (stateroot, csum, serial) =
            layout::resolve_ostree_arg(&opts.sysroot, arg).map_err(|e| e.to_string())?;
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
    notes.extend(c.skipped.into_iter().map(|(what, why)| skip_note(&what, &why)));
    Candidates { list: c.list, notes }
}

/// "what: why", without saying `what` twice: the errors about `ostree=`
/// already start with it.
fn skip_note(what: &str, why: &str) -> String {
    if why.starts_with(what) { why.to_string() } else { format!("{what}: {why}") }
}

fn label(d: &Deployment) -> String {
    format!("{}/{}", d.stateroot, d.id())
}

/// The boot-counting view of this boot: the markers read once, and the
/// number of tries a new default deployment gets.
struct Counting {
    markers: Markers,
    tries: u32,
    dir: MarkerDir,
}

impl Counting {
    fn read(opts: &Options) -> Counting {
        let dir = MarkerDir::new(&opts.sysroot);
        let tries = opts.args.tries.unwrap_or(opts.config.boot_counting.tries);
        let markers = match (dir.list(), layout::deployment_dirs(&opts.sysroot)) {
            (Ok(files), Ok(known)) => {
                let known: Vec<String> = known.iter().map(|(s, id)| counting::base_name(s, id)).collect();
                counting::reduce(&files, &known)
            }
            (Err(e), _) => {
                log::error!("{e}: boot counting state ignored");
                Markers::default()
            }
            (Ok(files), Err(e)) => {
                // Without the list of deployments no marker can be judged stale.
                log::warn!("{e}: boot counting markers not checked for stale entries");
                let bases: Vec<String> = files.iter().map(|f| counting::parse_marker(f).base).collect();
                counting::reduce(&files, &bases)
            }
        };
        Counting { markers, tries, dir }
    }
}

/// Plan the first bootable candidate and, unless `dry_run`, record the boot
/// attempt and execute the plan; on a failed step, undo and try the next
/// candidate. Candidates marked bad by boot counting are skipped; when every
/// bootable candidate is bad, the first of them boots anyway, with a warning.
pub fn run(opts: &Options, sys: &mut dyn System, dry_run: bool) -> Result<Outcome, NothingBootable> {
    let requested = select::describe_request(&opts.args);
    let Candidates { list, notes } = candidates(opts);
    for note in &notes {
        log::warn!("skipping {note}");
    }
    let mut tried = notes;
    let mut counting = Counting::read(opts);
    if !dry_run && !counting.markers.repairs.is_empty() {
        let repairs = std::mem::take(&mut counting.markers.repairs);
        for r in &repairs {
            log::info!("boot counting: repair: {r}");
        }
        if let Err(e) = apply_writable(&opts.sysroot, &counting.dir, &repairs) {
            log::error!("{e}");
        }
    }
    let honour_bad = opts.args.fallback == Fallback::Auto;
    let mut all_bad = Vec::new();
    for (d, reason) in list {
        let count = counting.markers.count(&base(&d));
        if honour_bad && reason != Reason::Manual && matches!(count, Count::Bad { .. }) {
            let msg = format!("{}: marked bad by boot counting ({count})", label(&d));
            log::warn!("skipping {msg}");
            tried.push(msg);
            all_bad.push((d, reason));
            continue;
        }
        if let Some(o) = attempt(opts, sys, dry_run, &counting, d, reason, &requested, &mut tried) {
            return Ok(o);
        }
    }
    // Nothing else could boot: a deployment marked bad is better than none.
    if let Some((d, reason)) = all_bad.into_iter().next() {
        log::error!("every bootable deployment is marked bad: booting {} anyway", label(&d));
        if let Some(o) = attempt(opts, sys, dry_run, &counting, d, reason, &requested, &mut tried) {
            return Ok(o);
        }
    }
    Err(NothingBootable { requested, tried })
}

fn base(d: &Deployment) -> String {
    counting::base_name(&d.stateroot, &d.id())
}

/// Try one candidate: check it, count the attempt, lay it out. `None` (with
/// the reason added to `tried`) when it cannot boot.
#[allow(clippy::too_many_arguments)]
fn attempt(
    opts: &Options,
    sys: &mut dyn System,
    dry_run: bool,
    counting: &Counting,
    d: Deployment,
    reason: Reason,
    requested: &str,
    tried: &mut Vec<String>,
) -> Option<Outcome> {
    let init = match layout::check_deployment(&opts.sysroot, &d, opts.init.as_deref()) {
        Ok(init) => init,
        Err(e) => {
            log::warn!("skipping {}: {e}", label(&d));
            tried.push(format!("{}: {e}", label(&d)));
            return None;
        }
    };
    let base = base(&d);
    // A manual choice counts no tries; only the default gets armed; the
    // second pass after a kexec was counted before the kexec.
    let arm = d.index == 0 && reason == Reason::Default;
    let change = match (reason, &opts.args.kexeced) {
        (Reason::Manual, _) | (_, Some(_)) => None,
        _ => counting.markers.attempt(&base, counting.tries, arm),
    };
    let mut kexec = kexec_image(opts, &d, reason);
    let count = match &change {
        Some(Change::Create { name } | Change::Rename { to: name, .. }) => counting::parse_marker(name).count,
        _ => counting.markers.count(&base),
    };
    // After a kexec the request and the candidates passed over are the
    // first pass's: this pass was asked for the fallback by name.
    let (requested, skipped) = match &opts.carried {
        Some(first) if !first.requested.is_empty() => {
            (first.requested.clone(), first.skipped.iter().chain(tried.iter()).cloned().collect())
        }
        _ => (requested.to_string(), tried.clone()),
    };
    let state = BootState {
        requested,
        selected: label(&d),
        index: d.index,
        reason: opts.args.kexeced.clone().unwrap_or_else(|| reason.to_string()),
        init,
        counting: count.to_string(),
        skipped,
    };
    // What /run/rootstock/state will hold, or, before a kexec, what the
    // second pass gets.
    let rendered = state.render();
    let steps = plan::prepare_root(&PrepareRoot {
        sysroot: &opts.sysroot,
        run: &opts.run,
        deployment: &d,
        config: &opts.config,
        bind_boot: boot_on_physical_root(&opts.sysroot, &d),
        state: rendered.clone(),
    });
    if !dry_run {
        if let Some(c) = &change {
            log::info!("boot counting: {c}");
            // Not fatal: booting uncounted beats not booting.
            if let Err(e) = apply_writable(&opts.sysroot, &counting.dir, std::slice::from_ref(c)) {
                log::error!("{e}");
            }
        }
        if let Some(k) = &mut kexec {
            k.carry = Some(rendered);
            match sys.kexec_load(k) {
                Ok(()) => {
                    log::warn!("booting {} with its own kernel {} (kexec)", label(&d), k.kernel.display());
                    return Some(Outcome {
                        deployment: d,
                        reason,
                        state,
                        plan: vec![],
                        counting: change,
                        kexec,
                    });
                }
                Err(e) => {
                    log::error!(
                        "kexec_file_load {}: {e}{}: booting {} on the running kernel",
                        k.kernel.display(),
                        kexec_refusal_hint(e),
                        label(&d)
                    );
                    kexec = None;
                }
            }
        }
        if let Err(StepFailed { number, step, errno }) = seam::run_plan(sys, &steps) {
            let msg = format!(
                "{}: step {number} ({}) failed on {}: {errno}",
                label(&d),
                step.purpose,
                step.op.target().display()
            );
            log::error!("{msg}");
            tried.push(msg);
            return None;
        }
    }
    let (level, message) = booting_message(&label(&d), d.index, reason, opts.args.kexeced.as_deref());
    log::log!(level, "{message}");
    Some(Outcome { deployment: d, reason, state, plan: steps, counting: change, kexec })
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
        // No kexec_file_load in this kernel (CONFIG_KEXEC_FILE off).
        Errno::NOSYS => " (this kernel has no kexec_file_load)",
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
fn booting_message(label: &str, index: usize, reason: Reason, kexeced: Option<&str>) -> (log::Level, String) {
    let after_kexec = if kexeced.is_some() { ", in its own kernel after kexec" } else { "" };
    match kexeced.unwrap_or(&reason.to_string()) {
        "fallback" => {
            (log::Level::Warn, format!("booting fallback deployment {label} (index {index}{after_kexec})"))
        }
        shown => (log::Level::Info, format!("booting {label} (index {index}, {shown}{after_kexec})")),
    }
}

/// ostree's rule for /boot: when the physical root's `boot/loader` is a
/// symlink, /boot is on the physical root's filesystem (not a separate
/// partition, whose mount point would be empty here) and the deployment's
/// `boot/` directory (not a symlink) gets a bind of it.
fn boot_on_physical_root(sysroot: &Path, d: &Deployment) -> bool {
    let is = |p: PathBuf, want: fn(&std::fs::Metadata) -> bool| {
        std::fs::symlink_metadata(p).is_ok_and(|m| want(&m))
    };
    is(sysroot.join("boot/loader"), |m| m.file_type().is_symlink())
        && is(sysroot.join(d.dir()).join("boot"), |m| m.file_type().is_dir())
}

/// The kexec to do instead of laying out `d`: in PID-1 mode, when `d` has no
/// modules for the running kernel (it was built for another kernel), boot
/// its own kernel and initramfs from its boot loader entry.
fn kexec_image(opts: &Options, d: &Deployment, reason: Reason) -> Option<KexecImage> {
    let kver = opts.running_kver.as_ref()?;
    if opts.args.kexeced.is_some() {
        return None; // already in the deployment's own kernel
    }
    let root = opts.sysroot.join(d.dir());
    let modules = format!("usr/lib/modules/{kver}");
    if layout::resolve_path(&root, Path::new(&modules)).is_ok_and(|p| root.join(p).is_dir()) {
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
                label(d)
            );
            None
        }
        (Kexec::Auto, None) => {
            log::warn!(
                "{} has no modules for the running kernel {kver} and no kernel in its boot loader entry: \
                 booting it on the running kernel",
                label(d)
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
    fn a_skip_note_names_the_request_once() {
        let arg = "ostree=/ostree/boot.0/os/ab/0";
        assert_eq!(
            skip_note(arg, &format!("{arg}: /ostree/boot.0: ENOENT 2 (No such file or directory)")),
            "ostree=/ostree/boot.0/os/ab/0: /ostree/boot.0: ENOENT 2 (No such file or directory)"
        );
        assert_eq!(
            skip_note("rootstock.deployment=3", "there are only 2 deployments"),
            "rootstock.deployment=3: there are only 2 deployments"
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
                Some("fallback"),
                log::Level::Warn,
                "booting fallback deployment os/a.0 (index 0, in its own kernel after kexec)",
            ),
            (
                Reason::Default,
                Some("default"),
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
    use crate::seam::fake::Recorder;

    fn opts(root: &Path, cmdline: &str, kver: Option<&str>) -> Options {
        Options {
            sysroot: root.to_path_buf(),
            run: root.join("run"),
            args: KernelArgs::parse(cmdline).unwrap(),
            config: Config::default(),
            init: None,
            running_kver: kver.map(str::to_string),
            carried: None,
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
    fn a_fallback_by_kexec_keeps_the_first_passes_request_and_skips() {
        let t = sysroot();
        let root = t.path();
        // The default (C2) has no init: the fallback is C1, for kernel a.
        std::fs::remove_file(root.join(format!("ostree/deploy/os/deploy/{C2}.0/usr/sbin/init"))).unwrap();
        built_for_kernel_a(root, C1);
        let first_arg = format!("ostree=/ostree/boot.1/os/{C2}/0");

        let mut r = Recorder::default();
        let o = run(&opts(root, &first_arg, Some("6.1.0-b")), &mut r, false).unwrap();
        let k = &r.kexec[0];
        assert_eq!(
            k.cmdline,
            format!("root=LABEL=r rw ostree=/ostree/boot.1/os/{C1}/0 rootstock.kexeced=fallback")
        );
        let carry = k.carry.as_deref().expect("the first pass's state rides along");
        assert_eq!(carry, o.state.render());
        let first = BootState::parse(carry);
        assert_eq!(first.requested, first_arg);
        assert_eq!(first.skipped.len(), 1);
        assert!(first.skipped[0].starts_with(&format!("os/{C2}.0: ")), "{:?}", first.skipped);

        // The second pass, started by the fallback's own BLS options: its
        // state names the first pass's request and what it passed over.
        let mut second = opts(root, &k.cmdline, Some("6.1.0-a"));
        second.carried = Some(first.clone());
        let mut r = Recorder::default();
        let o = run(&second, &mut r, false).unwrap();
        assert!(r.kexec.is_empty() && !r.ops.is_empty());
        assert_eq!(o.state.selected, format!("os/{C1}.0"));
        assert_eq!(o.state.reason, "fallback");
        assert_eq!(o.state.requested, first_arg);
        assert_eq!(o.state.skipped, first.skipped);

        // Without the carried state (an initramfs loaded without it) the
        // second pass still boots the fallback, naming its own request.
        let mut r = Recorder::default();
        let o = run(&opts(root, &k.cmdline, Some("6.1.0-a")), &mut r, false).unwrap();
        assert_eq!(o.state.reason, "fallback");
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
        let mut r = Recorder::default();
        let o = run(&opts(root, &arg, Some("6.1.0-a")), &mut r, false).unwrap();
        assert!(o.kexec.is_none() && r.kexec.is_empty() && !r.ops.is_empty());

        // Another kernel: loaded with kexec, nothing mounted, the attempt counted.
        let mut r = Recorder::default();
        let o =
            run(&opts(root, &format!("{arg} rootstock.tries=2"), Some("6.1.0-b")), &mut r, false).unwrap();
        assert!(r.ops.is_empty(), "no mounts before a kexec: {:?}", r.ops);
        let k = &r.kexec[0];
        assert_eq!(k.kernel, root.join(format!("boot/ostree/os-{C2}/vmlinuz")));
        assert_eq!(
            k.initrd.as_deref(),
            Some(root.join(format!("boot/ostree/os-{C2}/initramfs.img")).as_path())
        );
        assert_eq!(k.cmdline, format!("root=LABEL=r rw {arg} rootstock.kexeced=default"));
        assert_eq!(o.kexec.as_ref(), Some(k));
        assert!(matches!(o.counting, Some(Change::Create { .. })));

        // The second pass, in the deployment's own kernel: no kexec, no count.
        let mut r = Recorder::default();
        let o = run(
            &opts(root, &format!("{arg} rootstock.tries=2 rootstock.kexeced=fallback"), Some("6.1.0-b")),
            &mut r,
            false,
        )
        .unwrap();
        assert!(r.kexec.is_empty() && !r.ops.is_empty());
        assert_eq!(o.counting, None);
        assert_eq!(o.state.reason, "fallback");

        // rootstock.kexec=never: boots on the running kernel.
        let mut r = Recorder::default();
        let o = run(&opts(root, &format!("{arg} rootstock.kexec=never"), Some("6.1.0-b")), &mut r, false)
            .unwrap();
        assert!(o.kexec.is_none() && r.kexec.is_empty() && !r.ops.is_empty());

        // Deployment 1 (C1) has no kernel file: boots on the running kernel.
        let mut r = Recorder::default();
        let o = run(&opts(root, &format!("ostree=/ostree/boot.1/os/{C1}/0"), Some("6.1.0-b")), &mut r, false)
            .unwrap();
        assert!(o.kexec.is_none() && !r.ops.is_empty());
    }
}
