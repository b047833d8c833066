//! Boot counting and fallback under QEMU, through rootstock's own initramfs
//! (`mkinitramfs --modules qemu`): a default deployment that never blesses
//! itself falls back after its tries, a blessed one is never counted again,
//! a fallback built for another kernel is booted by kexec into that kernel,
//! and power cuts (SIGKILL of QEMU) at random instants of counted boots
//! never leave a state that does not boot or a counter that moved by more
//! than one try per boot attempt.
//!
//! The test OS blesses itself with `testos.bless=1` (`rootstock bless`) or
//! `testos.bless=bad`, and reports `counting=` (its deployment's state from
//! `rootstock status --json`) and `count_markers=` (`ls /sysroot/ostree/rootstock`).
//!
//! A deployment that never blessed itself failing to boot "in the field" is
//! the same as one that booted and did not bless: rootstock only sees the
//! next boot attempt, so the scenarios simply never bless.

use rootstock_qemu_tests::powercut::{Cut, Rng, kills_and_seed, run_and_cut};
use rootstock_qemu_tests::{
    Booted, CONSOLE_ARGS, Console, DiskSpec, Fixture, Kernel, OwnKernel, Report, RootFs, Scenario, Sysroot,
    TestOs, assert_field, can_run, debian_kernel, older_kernel, read_entries, rootstock_initramfs, run,
};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// The module set of rootstock's initramfs under QEMU (initramfs/qemu.list).
const SET: &str = "qemu";

fn field<'a>(r: &'a Report, key: &str) -> &'a str {
    r.get(key).unwrap_or("(missing)")
}

fn assert_contains(r: &Report, key: &str, want: &str) {
    let v = r.get(key).unwrap_or_default();
    assert!(v.contains(want), "report field {key} should contain {want:?}; whole report:\n{r}");
}

/// The marker files the test OS listed in /sysroot/ostree/rootstock.
fn markers(r: &Report) -> Vec<String> {
    match r.get("count_markers").map(str::trim) {
        None | Some("none") | Some("") => vec![],
        Some(list) => list.split_whitespace().map(str::to_string).collect(),
    }
}

/// The marker base name (`testos-$csum.$serial`) of each entry, in order.
fn bases(sysroot: &Sysroot) -> rootstock_qemu_tests::Result<Vec<String>> {
    Ok(sysroot.deployment_ids()?.into_iter().map(|id| format!("testos-{id}")).collect())
}

/// A scenario on an ext4 disk; returns it with the entries' marker base names.
fn scenario(
    name: &str,
    os: &TestOs,
    prepare: impl FnOnce(&mut Sysroot) -> rootstock_qemu_tests::Result<()>,
) -> (Scenario, Vec<String>) {
    scenario_on(name, os, &DiskSpec::default(), prepare)
}

/// [`scenario`] on the disk `disk`.
fn scenario_on(
    name: &str,
    os: &TestOs,
    disk: &DiskSpec,
    prepare: impl FnOnce(&mut Sysroot) -> rootstock_qemu_tests::Result<()>,
) -> (Scenario, Vec<String>) {
    let mut names = Vec::new();
    let s = Scenario::custom(
        name,
        os,
        |sysroot| {
            prepare(sysroot)?;
            names = bases(sysroot)?;
            Ok(())
        },
        disk,
    )
    .unwrap();
    (s, names)
}

/// Boot through rootstock's initramfs (for the scenario's kernel) to the
/// report.
fn boot(s: &Scenario, append: &str) -> Booted {
    let initrd = rootstock_initramfs(&s.kernel, SET).unwrap();
    let b = s.boot(Some(&initrd), append).unwrap();
    assert!(b.console.find("Kernel panic").is_none(), "kernel panic; console {}", b.console.log.display());
    b
}

/// A counted boot of a default that never blesses: tries 3 → 02-01, 01-02,
/// 00-03 (bad), then the rollback boots as a fallback, and the counter
/// never moves again.
#[test]
fn unblessed_default_falls_back_after_n_boots() {
    if !can_run() {
        return;
    }
    let (s, b) = scenario("counting-unblessed", &TestOs { deployments: 2, ..Default::default() }, |_| Ok(()));
    let append = format!("{} rootstock.tries=3", s.cmdline(0));
    for (left, done) in [(2, 1), (1, 2), (0, 3)] {
        let r = boot(&s, &append).report;
        assert_field(&r, "version", "2");
        assert_contains(&r, "rootstock_state", "reason=default");
        assert_eq!(markers(&r), vec![format!("{}+{left:02}-{done:02}", b[0])], "{r}");
        let want = if left > 0 {
            format!("indeterminate left={left} done={done}")
        } else {
            format!("bad done={done}")
        };
        assert_field(&r, "counting", &want);
        assert_field(&r, "bless", "none");
    }
    for _ in 0..2 {
        let r = boot(&s, &append).report;
        assert_field(&r, "version", "1");
        assert_contains(&r, "rootstock_state", "reason=fallback");
        assert_contains(&r, "rootstock_state", &format!("skipped=testos/{}", &b[0]["testos-".len()..]));
        assert_contains(&r, "rootstock_state", "marked bad by boot counting (bad (3 tries failed))");
        assert_field(&r, "counting", "never");
        assert_eq!(markers(&r), vec![format!("{}+00-03", b[0])], "the counter stays: {r}");
    }
}

/// The blessed fixture: a default that blessed itself on its first boot
/// (`rootstock.tries=2`, `testos.bless=1`); with the `rootstock.tries=2`
/// command line and the default's marker base name.
struct Blessed {
    s: Scenario,
    append: String,
    base: String,
}

fn blessed_fixture() -> &'static Blessed {
    static BLESSED: Fixture<Blessed> = Fixture::new();
    BLESSED.get(|| {
        let os = TestOs { deployments: 2, ..Default::default() };
        let (s, b) = scenario("counting-blessed", &os, |_| Ok(()));
        let append = format!("{} rootstock.tries=2", s.cmdline(0));
        let r = boot(&s, &format!("{append} testos.bless=1")).report;
        assert_field(&r, "version", "2");
        assert_field(&r, "bless", "ok");
        assert_contains(&r, "rootstock_state", "counting=indeterminate (1 left, 1 done)");
        assert_field(&r, "counting", "good");
        assert_eq!(markers(&r), vec![b[0].clone()], "the bare name: {r}");
        Blessed { s, append, base: b[0].clone() }
    })
}

/// A default that blessed itself on its first boot is good: never counted
/// again.
#[test]
fn blessed_deployment_is_never_counted_again() {
    if !can_run() {
        return;
    }
    let f = blessed_fixture();
    let s = f.s.copy("counting-blessed-good").unwrap();
    for _ in 0..2 {
        let r = boot(&s, &f.append).report;
        assert_field(&r, "version", "2");
        assert_contains(&r, "rootstock_state", "reason=default");
        assert_contains(&r, "rootstock_state", "counting=good");
        assert_field(&r, "counting", "good");
        assert_eq!(markers(&r), vec![f.base.clone()], "unchanged: {r}");
    }
}

/// A blessed default marked bad by the OS itself (`rootstock bless --bad`):
/// the next boot is the rollback.
#[test]
fn blessed_deployment_marked_bad_falls_back() {
    if !can_run() {
        return;
    }
    let f = blessed_fixture();
    let s = f.s.copy("counting-blessed-bad").unwrap();
    let r = boot(&s, &format!("{} testos.bless=bad", f.append)).report;
    assert_field(&r, "version", "2");
    assert_field(&r, "bless", "ok");
    assert_field(&r, "counting", "bad done=0");
    assert_eq!(markers(&r), vec![format!("{}+00-00", f.base)], "{r}");
    let r = boot(&s, &f.append).report;
    assert_field(&r, "version", "1");
    assert_contains(&r, "rootstock_state", "reason=fallback");
    assert_eq!(markers(&r), vec![format!("{}+00-00", f.base)], "{r}");
}

// `broken_deployment_falls_back_on_first_boot` is tiny_initramfs.rs's
// `tiny_deployment_without_init_falls_back_to_the_next` (default without
// /sbin/init → version 1, reason=fallback): not repeated here.

/// Append `args` to the `options` line of every BLS entry of the sysroot,
/// as a machine with a serial console has them (a kexec passes the entry's
/// options, not the running kernel's command line).
fn add_to_entry_options(sysroot: &mut Sysroot, args: &str) -> rootstock_qemu_tests::Result<()> {
    let dir = sysroot.dir.join("boot/loader/entries");
    for e in std::fs::read_dir(&dir)?.flatten() {
        let text = std::fs::read_to_string(e.path())?;
        let text: String = text
            .lines()
            .map(|l| if l.starts_with("options ") { format!("{l} {args}\n") } else { format!("{l}\n") })
            .collect();
        std::fs::write(e.path(), text)?;
    }
    sysroot.entries = read_entries(&sysroot.dir)?;
    Ok(())
}

/// The `Linux version X` lines of a console, in order (one per kernel).
fn kernels_started(c: &Console) -> Vec<String> {
    c.texts()
        .filter_map(|l| l.split("Linux version ").nth(1))
        .filter_map(|v| v.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The kexec fixture: deployment 1 is built for an older kernel (A: its
/// vmlinuz, its own rootstock initramfs, its modules directory), deployment
/// 2 (the default) for the current one (B). Made by booting B once with
/// `rootstock.tries=1`: the default's only try, so it is bad now. Each
/// scenario boots it from there (`snapshot`).
struct Kexec {
    s: Scenario,
    kernel_a: Kernel,
    kernel_b: Kernel,
    /// What a bootloader would pass for the default entry, plus counting.
    append: String,
    /// The count markers after the only try.
    markers: Vec<String>,
}

fn kexec_fixture() -> &'static Kexec {
    static KEXEC: Fixture<Kexec> = Fixture::new();
    KEXEC.get(|| {
        let kernel_b = debian_kernel().unwrap();
        let kernel_a = older_kernel().unwrap();
        assert_ne!(kernel_a.version, kernel_b.version, "two different kernels are needed");
        let initrd_a = rootstock_initramfs(&kernel_a, SET).unwrap();
        let initrd_b = rootstock_initramfs(&kernel_b, SET).unwrap();
        let os = TestOs {
            deployments: 2,
            initramfs: Some(initrd_b.clone()),
            own_kernels: vec![OwnKernel {
                deployment: 1,
                kernel: kernel_a.clone(),
                initramfs: Some(initrd_a),
            }],
            ..Default::default()
        };
        let (mut s, b) = scenario("counting-kexec", &os, |sys| add_to_entry_options(sys, CONSOLE_ARGS));
        assert!(s.entries[1].linux.contains(&kernel_a.version), "{:?}", s.entries[1]);
        assert!(s.entries[0].linux.contains(&kernel_b.version), "{:?}", s.entries[0]);
        assert_eq!(s.kernel.version, kernel_b.version);
        let append = format!("{} rootstock.tries=1", s.entries[0].options);
        // The only try of the default: it boots, never blesses.
        let r = boot(&s, &append).report;
        assert_field(&r, "version", "2");
        assert_field(&r, "kernel", &kernel_b.version);
        assert_eq!(markers(&r), vec![format!("{}+00-01", b[0])], "{r}");
        s.snapshot = true;
        Kexec { s, kernel_a, kernel_b, append, markers: markers(&r) }
    })
}

/// The default is bad and the fallback has no modules for B: rootstock
/// kexecs into A with A's initramfs and the entry's options, and the second
/// pass boots deployment 1 on A without counting anything.
#[test]
fn kexec_into_the_fallbacks_own_kernel() {
    if !can_run() {
        return;
    }
    let k = kexec_fixture();
    let (s, kernel_a, kernel_b) = (&k.s, &k.kernel_a, &k.kernel_b);
    let booted = boot(s, &k.append);
    let (r, c) = (&booted.report, &booted.console);
    if c.find("kexec into ").is_none() || field(r, "kernel") != kernel_a.version {
        let errors: Vec<&str> = c.texts().filter(|l| l.contains("kexec")).collect();
        panic!(
            "no kexec into {}: the kexec lines of the console:\n{}\n{r}",
            kernel_a.version,
            errors.join("\n")
        );
    }
    assert_eq!(kernels_started(c), vec![kernel_b.version.clone(), kernel_a.version.clone()]);
    assert_field(r, "kernel", &kernel_a.version);
    assert_field(r, "version", "1");
    assert_contains(r, "rootstock_state", "reason=fallback");
    // The state names the first pass's request and why it passed over the
    // default (carried in the initramfs it loaded), not the second pass's
    // `ostree=` of the fallback.
    let default_ostree = s.entries[0].ostree_arg().unwrap();
    assert_contains(r, "rootstock_state", &format!("requested=ostree={default_ostree} "));
    assert_contains(r, "rootstock_state", "marked bad by boot counting");
    assert_contains(r, "cmdline", "rootstock.kexeced=fallback");
    assert_contains(r, "cmdline", &format!("ostree={}", s.entries[1].ostree_arg().unwrap()));
    assert!(
        !field(r, "cmdline").contains("rootstock.tries"),
        "the entry's options, not B's command line: {r}"
    );
    assert_eq!(markers(r), k.markers, "nothing counted in either pass: {r}");
    let counted: Vec<&str> = c.texts().filter(|l| l.contains("rootstock: boot counting:")).collect();
    assert!(counted.is_empty(), "no boot-counting change in either pass: {counted:?}");
    let pass2: Vec<&str> =
        c.texts().skip_while(|l| !l.contains(&format!("Linux version {}", kernel_a.version))).collect();
    assert!(pass2.iter().any(|l| l.contains("rootstock: switching root")), "second pass switched root");
    assert!(
        pass2.iter().any(|l| l.contains("booting fallback deployment") && l.contains("after kexec")),
        "the second pass says it boots a fallback; console {}",
        c.log.display()
    );
}

/// `rootstock.kexec=never`: deployment 1 boots on B, with a warning.
#[test]
fn kexec_never_boots_the_fallback_on_the_running_kernel() {
    if !can_run() {
        return;
    }
    let k = kexec_fixture();
    let booted = boot(&k.s, &format!("{} rootstock.kexec=never", k.append));
    let (r, c) = (&booted.report, &booted.console);
    assert_field(r, "version", "1");
    assert_field(r, "kernel", &k.kernel_b.version);
    assert_contains(r, "rootstock_state", "reason=fallback");
    assert_eq!(kernels_started(c), vec![k.kernel_b.version.clone()]);
    let warning = c.find("rootstock.kexec=never: booting it anyway");
    assert!(warning.is_some(), "a warning names rootstock.kexec=never; console {}", c.log.display());
    assert_eq!(markers(r), k.markers, "{r}");
}

/// Under lockdown (what Secure Boot turns on), kexec_file_load demands a
/// signature the kernel trusts: either Debian's signed vmlinuz passes, or
/// the errno is logged and deployment 1 boots on B. Both must boot.
#[test]
fn kexec_under_lockdown_boots_the_fallback_either_way() {
    if !can_run() {
        return;
    }
    let k = kexec_fixture();
    let booted = boot(&k.s, &format!("{} lockdown=integrity", k.append));
    let (r, c) = (&booted.report, &booted.console);
    assert_field(r, "version", "1");
    assert_contains(r, "rootstock_state", "reason=fallback");
    let failed = c.find("rootstock: error: kexec_file_load");
    if field(r, "kernel") == k.kernel_b.version {
        assert!(failed.is_some(), "no kexec and no error logged; console {}", c.log.display());
    } else {
        assert_field(r, "kernel", &k.kernel_a.version);
    }
}

/// The boot-counting state of one deployment, as its marker says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Never,
    Good,
    /// `+LL-DD`; LL = 0 is bad.
    Count {
        left: u32,
        done: u32,
    },
}

impl Mark {
    /// The state after one counted boot attempt (tries armed on a never-counted default).
    fn attempt(self, tries: u32) -> Mark {
        match self {
            Mark::Never => Mark::Count { left: tries - 1, done: 1 },
            Mark::Count { left, done } if left > 0 => Mark::Count { left: left - 1, done: done + 1 },
            other => other,
        }
    }

    fn is_bad(self) -> bool {
        matches!(self, Mark::Count { left: 0, .. })
    }
}

/// The state of `base` in a listing of the marker directory; an error for
/// more than one marker of it or a name that is not a marker of it.
fn mark_of(files: &[String], base: &str) -> Result<Mark, String> {
    let mine: Vec<&String> =
        files.iter().filter(|f| *f == base || f.starts_with(&format!("{base}+"))).collect();
    match mine.as_slice() {
        [] => Ok(Mark::Never),
        [one] if *one == base => Ok(Mark::Good),
        [one] => {
            let c = &one[base.len() + 1..];
            let parsed = c.split_once('-').and_then(|(l, d)| {
                (l.len() == 2 && d.len() == 2).then_some((l.parse().ok()?, d.parse().ok()?))
            });
            match parsed {
                Some((left, done)) => Ok(Mark::Count { left, done }),
                None => Err(format!("not a counter: {one}")),
            }
        }
        many => Err(format!("more than one marker for {base}: {many:?}")),
    }
}

/// The marker directory of the disk image as the next mount would see it:
/// a copy has its journal replayed (`e2fsck -E journal_only`), must then be
/// consistent (`e2fsck -fn` exits 0), and is listed with `debugfs`. The
/// image itself is not touched: the next boot replays its journal.
fn host_markers(image: &Path, scratch: &Path) -> Result<Vec<String>, String> {
    let _ = std::fs::remove_file(scratch);
    run(Command::new("cp").arg("--sparse=always").arg(image).arg(scratch)).map_err(|e| e.to_string())?;
    let replay = Command::new("e2fsck").args(["-y", "-E", "journal_only"]).arg(scratch).output();
    let replay = replay.map_err(|e| format!("e2fsck: {e}"))?;
    if replay.status.code().is_none_or(|c| c > 1) {
        return Err(format!(
            "e2fsck -E journal_only: {:?}\n{}",
            replay.status,
            String::from_utf8_lossy(&replay.stdout)
        ));
    }
    let check = Command::new("e2fsck").args(["-f", "-n"]).arg(scratch).output().map_err(|e| e.to_string())?;
    if !check.status.success() {
        return Err(format!(
            "e2fsck -fn after the journal replay: {:?}\n{}{}",
            check.status,
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        ));
    }
    let out = Command::new("debugfs").args(["-R", "ls -p /ostree/rootstock"]).arg(scratch).output();
    let out = out.map_err(|e| format!("debugfs: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `ls -p`: /inode/mode/uid/gid/name/size/ per entry.
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    names.sort();
    let _ = std::fs::remove_file(scratch);
    Ok(names)
}

/// Where on the host clock (since QEMU's start) a boot's phases fall.
#[derive(Clone, Copy, Debug)]
struct Window {
    run_init: f64,
    counted: f64,
    switch: f64,
    end: f64,
}

fn window(c: &Console) -> Option<Window> {
    let at = |needle: &str| c.find(needle).map(|l| l.at.as_secs_f64());
    Some(Window {
        run_init: at(RUN_INIT)?,
        counted: at(COUNTED).or(at(SWITCHING))?,
        switch: at(SWITCHING)?,
        end: c.elapsed.as_secs_f64(),
    })
}

const RUN_INIT: &str = " as init process";
/// Logged just before the marker's rename/create + fsync + syncfs.
const COUNTED: &str = "rootstock: boot counting:";
/// Logged after the write and the mounts ("rootstock: booting X" or
/// "rootstock: warning: booting fallback deployment X").
const BOOTING: &str = ": booting ";
const SWITCHING: &str = "rootstock: switching root";

/// What a killed boot's console says about where the kill landed.
fn phase(c: &Console) -> &'static str {
    if c.find(rootstock_qemu_tests::BEGIN).is_some() {
        "after the report"
    } else if c.find(SWITCHING).is_some() {
        "after switch root"
    } else if c.find(BOOTING).is_some() {
        "after the write, before switch root"
    } else if c.find(COUNTED).is_some() {
        "during the write (or the mounts after it)"
    } else if c.find(RUN_INIT).is_some() {
        "in rootstock before its write"
    } else {
        "before /init"
    }
}

/// Power cuts: QEMU is killed (SIGKILL) at random instants of counted boots
/// (`rootstock.tries=3`, a default that never blesses), each kill followed
/// by a boot to the report. The instants: a quarter anywhere from 0.5 s to
/// the end of a boot (host clock); the rest aimed by the console, since the
/// host time of a phase varies by a second between boots: a random delay
/// after the kernel's "Run /init" (rootstock's whole phase), or after
/// rootstock's "boot counting:" line (the marker's rename, fsync, syncfs,
/// about 30 ms). After every kill the image (journal replayed on a copy)
/// must be consistent and the default's counter where it was or one try
/// further (one try further once rootstock logged that it is booting);
/// every complete boot must reach a report and take exactly one try (or
/// fall back once the default is bad). Most complete boots of a bad
/// default reset the counters (`testos.reset-counting=1`) to count again.
/// `ROOTSTOCK_POWERCUT_SEED` replays a run's choices;
/// `ROOTSTOCK_POWERCUT_KILLS` (default 50) sets the number of kills.
#[test]
fn power_cut_during_counted_boots() {
    if !can_run() {
        return;
    }
    let t0 = Instant::now();
    let (kills, seed) = kills_and_seed("counting-powercut", "ROOTSTOCK_POWERCUT_KILLS", 50);
    let mut rng = Rng(seed);
    let (s, b) = scenario("counting-powercut", &TestOs { deployments: 2, ..Default::default() }, |_| Ok(()));
    let initrd = rootstock_initramfs(&s.kernel, SET).unwrap();
    let tries = 3;
    let append = format!("{} rootstock.tries={tries}", s.cmdline(0));
    let scratch = s.work.join("inspect.raw");
    let mut violations: Vec<String> = Vec::new();
    let mut state = Mark::Never;
    let mut phases: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    let mut complete_boots = 0;

    // One boot to the report: it must take exactly one try.
    let mut complete = |state: &mut Mark, reset: bool, violations: &mut Vec<String>, what: &str| -> Console {
        let extra = if reset { " testos.reset-counting=1" } else { "" };
        let booted = match s.run(&s.qemu(Some(&initrd), &format!("{append}{extra}"))) {
            Ok(b) => b,
            Err(e) => panic!("{what}: the boot did not reach a report: {e}"),
        };
        complete_boots += 1;
        let r = &booted.report;
        let want = state.attempt(tries);
        let want_version = if state.is_bad() { "1" } else { "2" };
        if field(r, "version") != want_version {
            violations.push(format!("{what}: version {} (state before {state:?}): {r}", field(r, "version")));
        }
        let seen = mark_of(&markers(r), &b[0]);
        // With a reset, the listing is taken after the markers were removed.
        let want_seen = if reset { Mark::Never } else { want };
        if seen != Ok(want_seen) {
            violations.push(format!("{what}: the OS sees {seen:?}, want {want_seen:?} (before {state:?})"));
        }
        if mark_of(&markers(r), &b[1]) != Ok(Mark::Never) {
            violations.push(format!("{what}: the rollback was counted: {:?}", markers(r)));
        }
        *state = want_seen;
        match host_markers(&s.image, &scratch).and_then(|f| mark_of(&f, &b[0])) {
            Ok(m) if m == *state => {}
            other => {
                violations.push(format!("{what}: on the host after the boot: {other:?}, want {state:?}"))
            }
        }
        booted.console
    };

    let c = complete(&mut state, false, &mut violations, "calibration boot");
    let w = window(&c).expect("the calibration boot shows Run /init, boot counting and switching root");
    eprintln!(
        "[counting-powercut] host clock of the calibration boot: Run /init {:.2} s, boot counting {:.2} s, \
         switching root {:.2} s, QEMU exit {:.2} s",
        w.run_init, w.counted, w.switch, w.end
    );
    let rootstock_phase = w.switch - w.run_init;
    let (mut done, mut survived, mut attempts) = (0, 0, 0);
    let mut kill_at = Vec::new();
    while done < kills {
        attempts += 1;
        assert!(attempts <= 3 * kills, "too few boots were killed: {done} of {attempts}");
        let counts = state.attempt(tries) != state;
        let cut = match rng.range(0.0, 1.0) {
            x if x < 0.25 => Cut::At(rng.range(0.5, w.end)),
            x if x < 0.55 || !counts => Cut::After(RUN_INIT.into(), rng.range(0.0, rootstock_phase + 0.3)),
            _ => Cut::After(COUNTED.into(), rng.range(0.0, 0.035)),
        };
        let c = run_and_cut(&s.qemu(Some(&initrd), &append), &cut);
        let k = done + 1;
        let what = format!("kill {k} ({cut:?}, at {:.3} s)", c.elapsed.as_secs_f64());
        let before = state;
        let next = before.attempt(tries);
        let after = match host_markers(&s.image, &scratch).and_then(|f| mark_of(&f, &b[0])) {
            Ok(m) => m,
            Err(e) => {
                violations.push(format!("{what}: {e}"));
                before
            }
        };
        let ph = if c.timed_out { phase(&c) } else { "none: the boot ended first" };
        if after != before && after != next {
            violations
                .push(format!("{what} ({ph}): {before:?} became {after:?} (allowed: itself or {next:?})"));
        }
        // rootstock logs "booting" after its write was made durable.
        let written = !c.timed_out || c.find(BOOTING).is_some();
        if written && after != next {
            violations.push(format!(
                "{what} ({ph}): rootstock went on, but the counter is {after:?}, want {next:?}"
            ));
        }
        state = after;
        if !c.timed_out {
            eprintln!("[counting-powercut] {what}: not killed, the boot ended first; {before:?} → {after:?}");
            continue;
        }
        done += 1;
        kill_at.push(c.elapsed.as_secs_f64());
        let e = phases.entry(ph).or_default();
        e.0 += 1;
        if after != before {
            e.1 += 1;
        }
        eprintln!("[counting-powercut] {what}: {ph}; {before:?} → {after:?}");
        // Boot to the report; reset a bad default now and then to count again.
        let reset = state.attempt(tries).is_bad() && rng.chance(0.75);
        let c = complete(&mut state, reset, &mut violations, &format!("boot after kill {k}"));
        if c.report().is_some() {
            survived += 1;
        }
    }
    let mins = t0.elapsed().as_secs_f64() / 60.0;
    kill_at.sort_by(f64::total_cmp);
    eprintln!(
        "[counting-powercut] seed {seed}: {survived}/{kills} kills survived (the next boot reached its report); \
         {complete_boots} complete boots; kill instants {:.2}..{:.2} s after QEMU's start; by phase (kills, of \
         which the counter took the try): {phases:?}; {} violations; {mins:.1} min",
        kill_at.first().unwrap_or(&0.0),
        kill_at.last().unwrap_or(&0.0),
        violations.len()
    );
    assert!(violations.is_empty(), "invariant violations (seed {seed}):\n{}", violations.join("\n"));
    assert_eq!(survived, kills);
}

/// Power cuts on an xfs root: QEMU is killed during counted boots
/// (`rootstock.tries=3`), aimed by the console at rootstock's phase or its
/// marker write. The host cannot replay an xfs log without mounting, so
/// the kernel does: after every kill the rollback boots by a manual choice
/// (which counts nothing) and its report lists the markers, which must show
/// the default's counter where it was or one try further (one further once
/// rootstock logged that it is booting), and rootstock must find nothing
/// to repair (more than one marker of a deployment). Once the default is
/// bad, one more such boot (`testos.reset-counting=1`) forgets the counters
/// before the next kill. `ROOTSTOCK_POWERCUT_SEED` replays a run;
/// `ROOTSTOCK_POWERCUT_XFS_KILLS` (default 12) sets the number of kills.
#[test]
fn power_cut_during_counted_boots_on_xfs() {
    if !can_run() {
        return;
    }
    let t0 = Instant::now();
    let (kills, seed) = kills_and_seed("counting-powercut-xfs", "ROOTSTOCK_POWERCUT_XFS_KILLS", 12);
    let mut rng = Rng(seed);
    let disk = DiskSpec { fs: RootFs::Xfs, ..Default::default() };
    let os = TestOs { deployments: 2, ..Default::default() };
    let (s, b) = scenario_on("counting-powercut-xfs", &os, &disk, |_| Ok(()));
    let initrd = rootstock_initramfs(&s.kernel, SET).unwrap();
    let tries = 3;
    let counted = format!("{} rootstock.tries={tries}", s.cmdline(0));
    let look = format!("{counted} rootstock.deployment=1");
    let mut violations = Vec::new();
    // The markers as the rollback (booted by a manual choice) lists them;
    // with `reset`, it then forgets every counter.
    let read = |what: &str, reset: bool, violations: &mut Vec<String>| -> Mark {
        let extra = if reset { " testos.reset-counting=1" } else { "" };
        let booted = s.run(&s.qemu(Some(&initrd), &format!("{look}{extra}")));
        let booted = booted.unwrap_or_else(|e| panic!("{what}: the boot did not reach a report: {e}"));
        let r = booted.report;
        if field(&r, "version") != "1" || !field(&r, "rootstock_state").contains("reason=manual") {
            violations.push(format!("{what}: want the rollback by a manual choice: {r}"));
        }
        // rootstock reduces duplicate or stale markers before the test OS
        // lists them: a repair means the kill left more than one.
        if let Some(l) = booted.console.find("boot counting: repair") {
            violations.push(format!("{what}: the kill left markers to repair: {}", l.text));
        }
        mark_of(&markers(&r), &b[0]).unwrap_or_else(|e| {
            violations.push(format!("{what}: {e}"));
            Mark::Never
        })
    };

    // Calibration: one counted boot, seen by the next.
    let c = s.run(&s.qemu(Some(&initrd), &counted)).expect("the calibration boot reaches a report").console;
    let w = window(&c).expect("the calibration boot shows Run /init, boot counting and switching root");
    let mut state = read("after the calibration boot", false, &mut violations);
    assert_eq!(state, Mark::Never.attempt(tries), "the calibration boot took one try");
    let rootstock_phase = w.switch - w.run_init;
    let (mut done, mut attempts, mut moved) = (0, 0, 0);
    while done < kills {
        attempts += 1;
        assert!(attempts <= 3 * kills, "too few boots were killed: {done} of {attempts}");
        if state.is_bad() {
            // The test OS removes the markers before it lists them.
            let seen = read("reset", true, &mut violations);
            if seen != Mark::Never {
                violations.push(format!("the reset left {seen:?}"));
            }
            state = Mark::Never;
        }
        let cut = if rng.chance(0.65) {
            Cut::After(COUNTED.into(), rng.range(0.0, 0.035))
        } else {
            Cut::After(RUN_INIT.into(), rng.range(0.0, rootstock_phase + 0.3))
        };
        let c = run_and_cut(&s.qemu(Some(&initrd), &counted), &cut);
        let what = format!("kill {} ({cut:?}, at {:.3} s)", done + 1, c.elapsed.as_secs_f64());
        let (before, next) = (state, state.attempt(tries));
        let after = read(&format!("the boot after {what}"), false, &mut violations);
        let ph = if c.timed_out { phase(&c) } else { "none: the boot ended first" };
        if after != before && after != next {
            violations
                .push(format!("{what} ({ph}): {before:?} became {after:?} (allowed: itself or {next:?})"));
        }
        if (!c.timed_out || c.find(BOOTING).is_some()) && after != next {
            violations.push(format!(
                "{what} ({ph}): rootstock went on, but the counter is {after:?}, want {next:?}"
            ));
        }
        state = after;
        if c.timed_out {
            done += 1;
            moved += usize::from(after != before);
        }
        eprintln!("[counting-powercut-xfs] {what}: {ph}; {before:?} → {after:?}");
    }
    eprintln!(
        "[counting-powercut-xfs] seed {seed}: {done} kills on xfs, every next boot reached its report; the \
         counter took the try in {moved} of them; {} violations; {:.1} min",
        violations.len(),
        t0.elapsed().as_secs_f64() / 60.0
    );
    assert!(violations.is_empty(), "invariant violations (seed {seed}):\n{}", violations.join("\n"));
}

/// Logged by `rootstock bless` in the test OS after its rename, fsync and
/// syncfs.
const BLESSED: &str = " is now good (";

/// Power cuts while the booted OS blesses itself: `testos.bless=1` runs
/// `rootstock bless` right after switch root (the marker's rename to the
/// bare name, fsync, syncfs). QEMU is killed at a random instant from
/// rootstock's "switching root" to a little after bless's own log line
/// (calibrated on a first boot). After every kill the image (journal
/// replayed on a copy) must hold the default's marker counted once (the
/// try rootstock made durable before switching root) or good, good once
/// bless logged; the next boot must reach its report and bless whatever the
/// kill left, then reset the counters for the next kill.
/// `ROOTSTOCK_POWERCUT_SEED` replays a run; `ROOTSTOCK_POWERCUT_BLESS_KILLS`
/// (default 20) sets the number of kills.
#[test]
fn power_cut_while_blessing() {
    if !can_run() {
        return;
    }
    let t0 = Instant::now();
    let (kills, seed) = kills_and_seed("counting-powercut-bless", "ROOTSTOCK_POWERCUT_BLESS_KILLS", 20);
    let mut rng = Rng(seed);
    let (s, b) =
        scenario("counting-powercut-bless", &TestOs { deployments: 2, ..Default::default() }, |_| Ok(()));
    let initrd = rootstock_initramfs(&s.kernel, SET).unwrap();
    let tries = 3;
    let bless = format!("{} rootstock.tries={tries} testos.bless=1", s.cmdline(0));
    let bless_and_reset = format!("{bless} testos.reset-counting=1");
    let scratch = s.work.join("inspect.raw");
    let host = |what: &str| -> Result<Mark, String> {
        host_markers(&s.image, &scratch).and_then(|f| mark_of(&f, &b[0])).map_err(|e| format!("{what}: {e}"))
    };
    // A boot to the report that blesses whatever the marker is, then
    // forgets every counter: the next boot starts from "never counted".
    let complete = |what: &str, violations: &mut Vec<String>| {
        let booted = s.run(&s.qemu(Some(&initrd), &bless_and_reset));
        let booted = booted.unwrap_or_else(|e| panic!("{what}: the boot did not reach a report: {e}"));
        let r = &booted.report;
        if field(r, "bless") != "ok" || field(r, "reset_counting") != "yes" || field(r, "version") != "2" {
            violations.push(format!("{what}: want version 2, bless=ok, reset_counting=yes: {r}"));
        }
        match host(what) {
            Ok(Mark::Never) => {}
            other => violations.push(format!("{what}: after the reset the host sees {other:?}")),
        }
        booted.console
    };
    let mut violations = Vec::new();

    // Calibration: one blessed boot, kept (good), then a reset.
    let booted = s.run(&s.qemu(Some(&initrd), &bless)).expect("the calibration boot reaches a report");
    assert_field(&booted.report, "bless", "ok");
    assert_eq!(host("calibration").unwrap(), Mark::Good);
    let at = |needle: &str| booted.console.find(needle).map(|l| l.at.as_secs_f64());
    let (switch, blessed) = (at(SWITCHING).expect("switching root"), at(BLESSED).expect("bless's log line"));
    eprintln!(
        "[counting-powercut-bless] calibration: switching root at {switch:.2} s, bless logged at {blessed:.2} s \
         (+{:.3} s)",
        blessed - switch
    );
    complete("reset after the calibration", &mut violations);

    let (mut done, mut attempts, mut took) = (0, 0, [0usize; 3]);
    while done < kills {
        attempts += 1;
        assert!(attempts <= 3 * kills, "too few boots were killed: {done} of {attempts}");
        let cut = Cut::After(SWITCHING.into(), rng.range(0.0, blessed - switch + 0.15));
        let c = run_and_cut(&s.qemu(Some(&initrd), &bless), &cut);
        let what = format!("kill {} ({cut:?}, at {:.3} s)", done + 1, c.elapsed.as_secs_f64());
        let counted = Mark::Never.attempt(tries);
        let logged = c.find(BLESSED).is_some();
        match host(&what) {
            Ok(Mark::Good) => took[if logged { 2 } else { 1 }] += 1,
            Ok(m) if m == counted && !logged && c.timed_out => took[0] += 1,
            other => violations.push(format!(
                "{what}: the host sees {other:?}; want {counted:?} or Good (Good once bless logged: {logged}; \
                 killed: {})",
                c.timed_out
            )),
        }
        if !c.timed_out {
            eprintln!("[counting-powercut-bless] {what}: not killed, the boot ended first");
        } else {
            done += 1;
        }
        complete(&format!("boot after {what}"), &mut violations);
    }
    eprintln!(
        "[counting-powercut-bless] seed {seed}: {done} kills, every next boot reached its report; the marker \
         after the kill: counted {} times, good before bless's log line {} times, good after it {} times; {} \
         violations; {:.1} min",
        took[0],
        took[1],
        took[2],
        violations.len(),
        t0.elapsed().as_secs_f64() / 60.0
    );
    assert!(violations.is_empty(), "invariant violations (seed {seed}):\n{}", violations.join("\n"));
}

#[test]
fn markers_are_parsed_strictly() {
    let b = "testos-abc.0";
    let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(mark_of(&f(&[]), b), Ok(Mark::Never));
    assert_eq!(mark_of(&f(&["testos-abc.0"]), b), Ok(Mark::Good));
    assert_eq!(mark_of(&f(&["testos-abc.0+02-01", "testos-x.0"]), b), Ok(Mark::Count { left: 2, done: 1 }));
    assert!(mark_of(&f(&["testos-abc.0+02-01", "testos-abc.0"]), b).is_err());
    assert!(mark_of(&f(&["testos-abc.0+2-1"]), b).is_err());
    assert_eq!(Mark::Never.attempt(3), Mark::Count { left: 2, done: 1 });
    assert_eq!(Mark::Count { left: 1, done: 2 }.attempt(3), Mark::Count { left: 0, done: 3 });
    assert!(Mark::Count { left: 0, done: 3 }.attempt(3).is_bad());
}
