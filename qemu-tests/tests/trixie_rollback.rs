//! Automatic rollback on the Debian trixie test OS (systemd 257), with
//! rootstock-rollback.service, the test OS's health check
//! (testos-health.service, RequiredBy=boot-complete.target) and updates
//! deployed by the OS's own `ostree` (qemu-tests/trixie/testos-rollback).
//!
//! 1. One QEMU run, one kernel boot then soft reboots and two kexecs:
//!    version 2 (booted, counted, blessed) deploys 3 whose health check
//!    fails: rolled back to 2 by soft reboot (same boot id); 2 deploys 4
//!    whose health check hangs: the watchdog rolls it back; 2 deploys 5,
//!    healthy: blessed, left alone; 5 deploys 6 built for another kernel,
//!    entered by kexec, failing: rolled back to 5 by kexec. 5, booted from
//!    its own entry, stages 7 (failing) for the next boot.
//! 2. The same rollback by a full reboot (`rootstock.rollback=reboot`), for
//!    the time it takes against the soft reboot's.
//! 3. Power cuts (SIGKILL of QEMU) at random instants of a soft-reboot
//!    rollback: the next boot ends on the good version, the markers and the
//!    history consistent. `ROOTSTOCK_ROLLBACK_POWERCUTS` sets how many
//!    (default 3; `make test` runs 1), `ROOTSTOCK_POWERCUT_SEED` replays.

use rootstock_qemu_tests::powercut::{Cut, Rng, kills_and_seed, run_and_cut};
use rootstock_qemu_tests::trixie::TrixieScenario;
use rootstock_qemu_tests::{CONSOLE_ARGS, Checks, Console, Report, can_run, run_qemu};
use std::time::{Duration, Instant};

/// The watchdog of the scenario's boots: far above the ~20 s a healthy
/// userspace takes to reach boot-complete.target under TCG.
const WATCHDOG: u64 = 60;

fn history(r: &Report) -> serde_json::Value {
    let text = r.get("rootstock_history").unwrap_or("");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("status --history --json: {e}: {text}"))
}

/// The newest history record of `version`.
fn record_of(h: &serde_json::Value, version: &str) -> serde_json::Value {
    let records = h["records"].as_array().cloned().unwrap_or_default();
    records.into_iter().rev().find(|r| r["version"] == version).unwrap_or(serde_json::Value::Null)
}

/// Host seconds from the first console line containing `from` to the first
/// one after it containing `to`.
fn between(c: &Console, from: &str, to: &str) -> Option<f64> {
    let i = c.lines.iter().position(|l| l.text.contains(from))?;
    let end = c.lines[i..].iter().find(|l| l.text.contains(to))?;
    Some((end.at - c.lines[i].at).as_secs_f64())
}

fn at(c: &Console, needle: &str) -> Option<f64> {
    c.find(needle).map(|l| l.at.as_secs_f64())
}

/// A good version's report after rolling back from `bad`: the fallback,
/// the bad one's record with `verdict`, and `how` it got here.
fn rolled_back(
    label: &str,
    r: &Report,
    bad: &str,
    verdict: &str,
    how: &str,
    action: &str,
) -> serde_json::Value {
    let h = history(r);
    let rec = record_of(&h, bad);
    let mut c = Checks::default();
    c.check(
        "history readable",
        h["problems"].as_array().is_some_and(|p| p.is_empty()),
        h["problems"].to_string(),
    );
    c.check(&format!("{bad} is {verdict}"), rec["verdict"] == verdict, rec.to_string());
    c.check(
        "the failed health check is named",
        rec["units"].as_array().is_some_and(|u| u.iter().any(|u| u == "testos-health.service")),
        rec["units"].to_string(),
    );
    c.check(
        &format!("action: {action}"),
        rec["action"].as_str().is_some_and(|a| a.starts_with(action)),
        rec.to_string(),
    );
    let me = record_of(&h, r.get("version").unwrap_or("?"));
    c.check(&format!("this attempt recorded as a {how}"), me["how"] == how, me.to_string());
    let deps = r.get("rootstock_deployments").unwrap_or("");
    c.check(&format!("{bad} is bad on disk"), deps.contains(":bad") && !deps.contains(":bad:booted"), deps);
    c.field(r, "usr_ro", "yes");
    c.field(r, "failed_units", "none");
    c.finish(label, r);
    rec
}

#[test]
fn trixie_rolls_back_failed_updates_by_soft_reboot_watchdog_kexec_and_reboot() {
    if !can_run() {
        return;
    }
    let t = Instant::now();
    let s = TrixieScenario::new("trixie-rollback").unwrap();
    let plan = "fail,hang,ok,kexec-fail";
    let append = s.cmdline(
        0,
        &format!("rootstock.tries=3 rootstock.rollback-watchdog={WATCHDOG} testos.rollback={plan}"),
    );
    let mut q = s.qemu(0, &append).unwrap();
    q.timeout = Duration::from_secs(1800);
    let b = s.run(&q).unwrap();
    let c = &b.booted.console;
    // Failing versions may be rolled back before they print their report.
    let reports: Vec<Report> = c.reports().into_iter().filter(|r| r.get("health") == Some("ok")).collect();
    let versions: Vec<&str> = reports.iter().map(|r| r.get("version").unwrap_or("?")).collect();
    assert_eq!(versions, ["2", "2", "2", "5", "5"], "the good versions' reports; console:\n{}", c.tail(80));
    let boot_id = reports[0].get("boot_id").unwrap_or("?");

    let mut k = Checks::default();
    k.field(&reports[0], "bless_result", "success");
    k.field(&reports[0], "rollback_result", "success");
    k.finish("version 2, booted and blessed", &reports[0]);

    // 3 failed its health check: back on 2 by soft reboot, same kernel boot.
    let r = &reports[1];
    let rec = rolled_back(
        "3 rolled back by soft reboot",
        r,
        "3",
        "bad-health-check",
        "soft-reboot",
        "soft reboot into",
    );
    let mut k = Checks::default();
    k.field(r, "boot_id", boot_id);
    k.check("3's record names the same boot", rec["boot_id"] == boot_id, rec.to_string());
    // This userspace's state: the soft reboot's (status reads it).
    let this = r.get("rootstock_this_boot").unwrap_or("");
    k.check("a fallback", this.contains("(fallback; requested prepare-soft-reboot"), this);
    let json = r.get("rootstock_status_json").unwrap_or("");
    k.check(
        "from 3, saying why",
        json.contains("marked bad by rootstock rollback (a health check failed"),
        json,
    );
    k.finish("soft-reboot rollback", r);

    // 4 hung: the watchdog.
    let r = &reports[2];
    rolled_back("4 rolled back by the watchdog", r, "4", "bad-watchdog", "soft-reboot", "soft reboot into");
    let mut k = Checks::default();
    k.field(r, "boot_id", boot_id);
    k.finish("watchdog rollback", r);

    // 5 healthy: blessed, not rolled back.
    let r = &reports[3];
    let rec = record_of(&history(r), "5");
    let mut k = Checks::default();
    k.field(r, "bless_result", "success");
    k.field(r, "rollback_result", "success");
    k.check("5 blessed in the history", rec["verdict"] == "blessed", rec.to_string());
    k.check("5 not rolled back", rec["action"].is_null() || rec["action"] == "", rec.to_string());
    k.field(r, "boot_id", boot_id);
    k.finish("a healthy update", r);

    // 6 (another kernel, entered by kexec) failed: back on 5 by kexec.
    let r = &reports[4];
    let rec = rolled_back("6 rolled back by kexec", r, "6", "bad-health-check", "kexec", "kexec into");
    let mut k = Checks::default();
    k.check("6 was entered by kexec", rec["how"] == "kexec", rec.to_string());
    k.check("6 ran another kernel (a new boot)", rec["boot_id"] != boot_id, rec.to_string());
    k.field(r, "kernel", &s.image.kernel.version);
    k.check("5 staged 7", c.find("TESTOS-STAGED 7").is_some(), c.tail(20));
    k.finish("kexec rollback", r);

    let soft = between(c, "TESTOS-HEALTH-FAILED 3", "TESTOS-BOOT-COMPLETE 2");
    let watchdog = between(c, "TESTOS-HEALTH-HANGS 4", "TESTOS-BOOT-COMPLETE 2");
    let kexec = between(c, "TESTOS-HEALTH-FAILED 6", "TESTOS-BOOT-COMPLETE 5");

    // 2. The same failure rolled back by a full reboot: QEMU exits at the
    // reboot (-no-reboot) and starts again, as a machine's firmware would.
    let options = s.entry_options().unwrap();
    let reboot_append = format!("{CONSOLE_ARGS} {} rootstock.tries=3 rootstock.rollback=reboot", options[0]);
    let mut q = s.qemu(0, &reboot_append).unwrap();
    q.timeout = Duration::from_secs(600);
    let first = run_qemu(&q).unwrap();
    let failed_at = at(&first, "TESTOS-HEALTH-FAILED 7");
    assert!(failed_at.is_some() && !first.timed_out, "7 failed and rebooted:\n{}", first.tail(40));
    let again = s.run(&s.qemu(0, &reboot_append).unwrap()).unwrap();
    let r = &again.booted.report;
    rolled_back("7 rolled back by a full reboot", r, "7", "bad-health-check", "boot", "reboot into");
    let full = failed_at
        .zip(at(&again.booted.console, "TESTOS-BOOT-COMPLETE 5"))
        .map(|(f, done)| first.elapsed.as_secs_f64() - f + done);

    eprintln!(
        "[trixie-rollback] failed health check → the fallback's boot-complete.target (host clock, same VM): \
         soft reboot {:.1} s, kexec {:.1} s, full reboot {:.1} s (QEMU restart included); \
         hung → watchdog ({WATCHDOG} s) → fallback's boot-complete {:.1} s; scenario wall time {:.1} s",
        soft.unwrap_or(f64::NAN),
        kexec.unwrap_or(f64::NAN),
        full.unwrap_or(f64::NAN),
        watchdog.unwrap_or(f64::NAN),
        t.elapsed().as_secs_f64()
    );

    // 3. Power cuts during a soft-reboot rollback.
    let (cuts, seed) = kills_and_seed("trixie-rollback-powercut", "ROOTSTOCK_ROLLBACK_POWERCUTS", 3);
    let mut rng = Rng(seed);
    let window = soft.unwrap_or(30.0) + 2.0;
    // 8: the version 5 staged after the full reboot (versions 1 to 7 exist).
    for (n, staged) in (1..=cuts).zip(8..) {
        let options = s.entry_options().unwrap();
        let append = format!("{CONSOLE_ARGS} {} rootstock.tries=3", options[0]);
        let delay = rng.range(0.0, window);
        let needle = format!("TESTOS-HEALTH-FAILED {staged}");
        let mut q = s.qemu(0, &append).unwrap();
        q.timeout = Duration::from_secs(600);
        let cut = run_and_cut(&q, &Cut::After(needle.clone(), delay));
        let what = format!("cut {n} ({delay:.2} s after {staged}'s failed health check)");
        assert!(cut.find(&needle).is_some(), "{what}: {staged} never failed:\n{}", cut.tail(40));
        let after =
            s.run(&s.qemu(0, &append).unwrap()).unwrap_or_else(|e| panic!("{what}: the next boot: {e}"));
        let r = &after.booted.report;
        let mut k = Checks::default();
        k.field(r, "version", "5");
        let h = history(r);
        k.check(
            "history readable",
            h["problems"].as_array().is_some_and(|p| p.is_empty()),
            h["problems"].to_string(),
        );
        let deps = r.get("rootstock_deployments").unwrap_or("");
        k.check(
            &format!("{staged} bad on disk"),
            deps.split(' ').next().is_some_and(|d| d.ends_with(":bad")),
            deps,
        );
        k.check(
            "no duplicate marker to repair",
            after.booted.console.find("stale or duplicate").is_none(),
            after.booted.console.tail(5),
        );
        k.check(
            "5 staged the next",
            after.booted.console.find(&format!("TESTOS-STAGED {}", staged + 1)).is_some(),
            "",
        );
        k.finish(&what, r);
        eprintln!(
            "[trixie-rollback-powercut] {what}: consistent; {}",
            record_of(&h, &staged.to_string())["verdict"]
        );
    }
}
