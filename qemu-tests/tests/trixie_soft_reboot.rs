//! `rootstock prepare-soft-reboot` and `systemctl soft-reboot` on the Debian
//! trixie test OS (systemd 257), then a real reboot.
//!
//! One QEMU run, three userspaces on one kernel: the default deployment
//! booted through rootstock's initramfs (`rootstock.tries=1`) commits and
//! deploys the next version (same kernel) with the OS's own `ostree`,
//! writes to /var, runs `rootstock prepare-soft-reboot` and `systemctl
//! soft-reboot`; the new userspace reports, is blessed by
//! rootstock-bless.service, and does the same again with the bless unit
//! masked. Then a real reboot from the entries on the disk: the unblessed
//! deployment is marked bad, and the initramfs falls back to the blessed one;
//! there, a version built for another kernel is deployed: prepare-soft-reboot
//! refuses it, `--kexec` loads its kernel and `systemctl kexec` boots it.

use rootstock_qemu_tests::trixie::{OTHER_KERNEL_VERSION, TrixieScenario};
use rootstock_qemu_tests::{BEGIN as REPORT_BEGIN, CONSOLE_ARGS, Checks, Report, can_run};
use std::time::{Duration, Instant};

/// The layout and the record of a userspace entered by soft reboot from
/// `before` (the report of the userspace before it).
fn soft_rebooted(label: &str, r: &Report, before: &Report, version: &str, step: &str) {
    let mut c = Checks::default();
    c.field(r, "version", version);
    c.field(r, "soft_step", step);
    c.field(r, "boot_id", before.get("boot_id").unwrap_or("?"));
    c.field(r, "kernel", before.get("kernel").unwrap_or("?"));
    c.field(r, "failed_units", "none");
    c.field(r, "usr_ro", "yes");
    c.field(r, "etc_rw", "yes");
    c.field(r, "var_rw", "yes");
    c.field(r, "var_mounts", "1");
    c.field(r, "sysroot_is_physical", "yes");
    c.field(r, "var_soft_probe", &format!("written before soft reboot {}", step.parse::<u32>().unwrap() - 1));
    c.field(r, "ostree_booted_index", "0");
    let this = r.get("rootstock_this_boot").unwrap_or("");
    c.check(
        "rootstock status: soft-reboot",
        this.contains("(soft-reboot; requested prepare-soft-reboot"),
        this,
    );
    let booted = r.get("ostree_booted").unwrap_or("");
    c.check(
        "rootstock status names ostree's booted one",
        !booted.is_empty() && this.starts_with(booted),
        format!("{this} vs {booted}"),
    );
    let prepare = r.get("soft_prepare").unwrap_or("");
    c.check("nextroot was private", prepare.contains("nextroot:") && !prepare.contains("shared"), prepare);
    c.finish(label, r);
}

#[test]
fn trixie_soft_reboots_into_new_deployments_and_counting_falls_back_after() {
    if !can_run() {
        return;
    }
    let t = Instant::now();
    let s = TrixieScenario::new("trixie-soft-reboot").unwrap();
    let append = s.cmdline(0, "rootstock.tries=1 testos.soft-reboot=2");
    let mut q = s.qemu(0, &append).unwrap();
    q.timeout = q.timeout.max(Duration::from_secs(900));
    let b = s.run(&q).unwrap();
    let reports = b.booted.console.reports();
    let versions: Vec<&str> = reports.iter().map(|r| r.get("version").unwrap_or("?")).collect();
    assert_eq!(
        versions,
        ["2", "3", "4"],
        "three userspaces, each a new version; console:\n{}",
        b.booted.console.tail(60)
    );
    let (first, second, third) = (&reports[0], &reports[1], &reports[2]);
    assert_eq!(first.get("rootstock_state").map(|s| s.contains("reason=default")), Some(true), "{first}");

    soft_rebooted("soft reboot 1 (blessed)", second, first, "3", "1");
    let mut c = Checks::default();
    // Counted with one try, then blessed by the new userspace's unit.
    c.field(second, "bless_result", "success");
    let deps = second.get("rootstock_deployments").unwrap_or("");
    c.check(
        "the soft-rebooted deployment is good",
        deps.starts_with("0:") && deps.split(' ').next().unwrap_or("").ends_with(":good:booted"),
        deps,
    );
    c.finish("soft reboot 1 counting", second);

    soft_rebooted("soft reboot 2 (not blessed)", third, second, "4", "2");
    let mut c = Checks::default();
    c.field(third, "bless_masked", "yes");
    let deps = third.get("rootstock_deployments").unwrap_or("");
    let first_dep = deps.split(' ').next().unwrap_or("");
    c.check("counted, not blessed", first_dep.ends_with(":bad:booted"), deps);
    c.finish("soft reboot 2 counting", third);

    // A real reboot, as a boot loader would: the newest entry on the disk.
    // Then, in the booted fallback, a version for another kernel:
    // prepare-soft-reboot refuses it, --kexec loads its kernel,
    // `systemctl kexec` boots it.
    let options = s.entry_options().unwrap();
    let append = format!("{CONSOLE_ARGS} {} rootstock.tries=1 testos.kexec=1", options[0]);
    let mut q = s.qemu(0, &append).unwrap();
    q.timeout = q.timeout.max(Duration::from_secs(600));
    let reboot = s.run(&q).unwrap();
    let reports2 = reboot.booted.console.reports();
    assert_eq!(
        reports2.len(),
        2,
        "the fallback's report and the kexeced one's:\n{}",
        reboot.booted.console.tail(60)
    );
    let (fallback, kexeced) = (&reports2[0], &reports2[1]);
    let mut c = Checks::default();
    c.field(fallback, "version", "3");
    c.field(fallback, "failed_units", "none");
    let state = fallback.get("rootstock_state").unwrap_or("");
    c.check("a fallback boot", state.contains("reason=fallback"), state);
    c.check("the soft-rebooted one was skipped as bad", state.contains("marked bad by boot counting"), state);
    let kexec = fallback.get("kexec").unwrap_or("");
    let old = &s.image.other_kernel;
    let refusal =
        format!("has no modules for the running kernel {} (it was built for {old})", s.image.kernel.version);
    c.check(
        "another kernel is refused, with what to do",
        kexec.contains(&refusal) && kexec.contains("--kexec"),
        kexec,
    );
    c.check("--kexec loaded it", kexec.contains("kexec_loaded=1") && kexec.ends_with("exit=0"), kexec);
    c.finish("real reboot after the unblessed soft reboot", fallback);

    let mut c = Checks::default();
    c.field(kexeced, "kernel", old);
    c.field(kexeced, "version", OTHER_KERNEL_VERSION);
    c.field(kexeced, "failed_units", "none");
    c.field(kexeced, "usr_ro", "yes");
    c.field(kexeced, "ostree_booted_index", "0");
    let state = kexeced.get("rootstock_state").unwrap_or("");
    c.check("booted by rootstock's initramfs", state.contains("reason=default"), state);
    c.finish("kexec into the deployment's own kernel", kexeced);

    // Host clock: the request (a console line the guest prints just
    // before `systemctl soft-reboot` or `kexec`) → the next report.
    let lines = |b: &rootstock_qemu_tests::trixie::TrixieBoot| {
        b.booted.console.lines.iter().map(|l| (l.at.as_secs_f64(), l.text.clone())).collect::<Vec<_>>()
    };
    let after = |lines: &[(f64, String)], marker: &str, nth: usize| -> Option<f64> {
        let i = lines.iter().enumerate().filter(|(_, l)| l.1.contains(marker)).nth(nth)?.0;
        let end = lines[i..].iter().find(|l| l.1.contains(REPORT_BEGIN))?;
        Some(end.0 - lines[i].0)
    };
    let (run1, run2) = (lines(&b), lines(&reboot));
    let first_report =
        |lines: &[(f64, String)]| lines.iter().find(|l| l.1.contains(REPORT_BEGIN)).map(|l| l.0);
    eprintln!(
        "[trixie-soft-reboot] request → the new userspace's report (host clock, same VM): soft reboot {:.1} s and {:.1} s; \
         kexec into another kernel {:.1} s; a full boot (QEMU start → report, firmware included) {:.1} s and {:.1} s; \
         scenario wall time {:.1} s",
        after(&run1, "TESTOS-SOFT-REBOOT-REQUESTED", 0).unwrap_or(f64::NAN),
        after(&run1, "TESTOS-SOFT-REBOOT-REQUESTED", 1).unwrap_or(f64::NAN),
        after(&run2, "TESTOS-KEXEC-REQUESTED", 0).unwrap_or(f64::NAN),
        first_report(&run1).unwrap_or(f64::NAN),
        first_report(&run2).unwrap_or(f64::NAN),
        t.elapsed().as_secs_f64()
    );
}
