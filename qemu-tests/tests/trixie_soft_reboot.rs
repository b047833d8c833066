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
use rootstock_qemu_tests::{BEGIN as REPORT_BEGIN, CONSOLE_ARGS, Report, can_run};
use std::time::{Duration, Instant};

fn check(c: &mut Vec<(String, bool, String)>, r: &Report, key: &str, want: &str) {
    let got = r.get(key).unwrap_or("<missing>");
    c.push((format!("{key} = {want}"), got == want, format!("got {got}")));
}

fn verdict(label: &str, c: &[(String, bool, String)], r: &Report) {
    eprintln!("[{label}] checks:");
    for (name, ok, detail) in c {
        eprintln!("  {} {name}  ({detail})", if *ok { "PASS" } else { "FAIL" });
    }
    let failed: Vec<&str> = c.iter().filter(|r| !r.1).map(|r| r.0.as_str()).collect();
    assert!(failed.is_empty(), "[{label}] failed checks: {failed:?}\nwhole report:\n{r}");
}

/// The layout and the record of a userspace entered by soft reboot from
/// `before` (the report of the userspace before it).
fn soft_rebooted(label: &str, r: &Report, before: &Report, version: &str, step: &str) {
    let mut c = Vec::new();
    check(&mut c, r, "version", version);
    check(&mut c, r, "soft_step", step);
    check(&mut c, r, "boot_id", before.get("boot_id").unwrap_or("?"));
    check(&mut c, r, "kernel", before.get("kernel").unwrap_or("?"));
    check(&mut c, r, "failed_units", "none");
    check(&mut c, r, "usr_ro", "yes");
    check(&mut c, r, "etc_rw", "yes");
    check(&mut c, r, "var_rw", "yes");
    check(&mut c, r, "var_mounts", "1");
    check(&mut c, r, "sysroot_is_physical", "yes");
    check(
        &mut c,
        r,
        "var_soft_probe",
        &format!("written before soft reboot {}", step.parse::<u32>().unwrap() - 1),
    );
    check(&mut c, r, "ostree_booted_index", "0");
    let this = r.get("rootstock_this_boot").unwrap_or("");
    c.push((
        "rootstock status: soft-reboot".into(),
        this.contains("(soft-reboot; requested prepare-soft-reboot"),
        this.into(),
    ));
    let booted = r.get("ostree_booted").unwrap_or("");
    c.push((
        "rootstock status names ostree's booted one".into(),
        !booted.is_empty() && this.starts_with(booted),
        format!("{this} vs {booted}"),
    ));
    let prepare = r.get("soft_prepare").unwrap_or("");
    c.push((
        "nextroot was private".into(),
        prepare.contains("nextroot:") && !prepare.contains("shared"),
        prepare.into(),
    ));
    verdict(label, &c, r);
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
    let mut c = Vec::new();
    // Counted with one try, then blessed by the new userspace's unit.
    check(&mut c, second, "bless_result", "success");
    let deps = second.get("rootstock_deployments").unwrap_or("");
    c.push((
        "the soft-rebooted deployment is good".into(),
        deps.starts_with("0:") && deps.split(' ').next().unwrap_or("").ends_with(":good:booted"),
        deps.into(),
    ));
    verdict("soft reboot 1 counting", &c, second);

    soft_rebooted("soft reboot 2 (not blessed)", third, second, "4", "2");
    let mut c = Vec::new();
    check(&mut c, third, "bless_masked", "yes");
    let deps = third.get("rootstock_deployments").unwrap_or("");
    let first_dep = deps.split(' ').next().unwrap_or("");
    c.push(("counted, not blessed".into(), first_dep.ends_with(":bad:booted"), deps.into()));
    verdict("soft reboot 2 counting", &c, third);

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
    let mut c = Vec::new();
    check(&mut c, fallback, "version", "3");
    check(&mut c, fallback, "failed_units", "none");
    let state = fallback.get("rootstock_state").unwrap_or("");
    c.push(("a fallback boot".into(), state.contains("reason=fallback"), state.into()));
    c.push((
        "the soft-rebooted one was skipped as bad".into(),
        state.contains("marked bad by boot counting"),
        state.into(),
    ));
    let kexec = fallback.get("kexec").unwrap_or("");
    let old = &s.image.other_kernel;
    let refusal =
        format!("has no modules for the running kernel {} (it was built for {old})", s.image.kernel.version);
    c.push((
        "another kernel is refused, with what to do".into(),
        kexec.contains(&refusal) && kexec.contains("--kexec"),
        kexec.into(),
    ));
    c.push((
        "--kexec loaded it".into(),
        kexec.contains("kexec_loaded=1") && kexec.ends_with("exit=0"),
        kexec.into(),
    ));
    verdict("real reboot after the unblessed soft reboot", &c, fallback);

    let mut c = Vec::new();
    check(&mut c, kexeced, "kernel", old);
    check(&mut c, kexeced, "version", OTHER_KERNEL_VERSION);
    check(&mut c, kexeced, "failed_units", "none");
    check(&mut c, kexeced, "usr_ro", "yes");
    check(&mut c, kexeced, "ostree_booted_index", "0");
    let state = kexeced.get("rootstock_state").unwrap_or("");
    c.push(("booted by rootstock's initramfs".into(), state.contains("reason=default"), state.into()));
    verdict("kexec into the deployment's own kernel", &c, kexeced);

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
