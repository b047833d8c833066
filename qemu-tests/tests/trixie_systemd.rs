//! Compatibility: a real Debian trixie OS (systemd 257 as init, ostree
//! 2025.2's own tools inside), deployed by the `ostree` CLI, booted through
//! rootstock's initramfs. systemd must start cleanly on the layout, the OS's
//! own `ostree admin status` must mark the deployment rootstock booted, and
//! rootstock-bless.service must run after boot-complete.target.

use rootstock_qemu_tests::trixie::{TrixieBoot, TrixieScenario};
use rootstock_qemu_tests::{Checks, Fixture, Report, can_run};

/// The checks that hold on every boot of the OS, whichever deployment.
fn common_checks(c: &mut Checks, r: &Report, s: &TrixieScenario, index: usize) {
    let state = r.get("system_state").unwrap_or("<missing>");
    let failed = r.get("failed_units").unwrap_or("<missing>");
    c.check(
        "systemd reached running (degraded only with no failed unit)",
        state == "running" || (state == "degraded" && failed == "none"),
        format!("system_state={state}"),
    );
    c.field(r, "failed_units", "none");
    let want = &s.image.deployments[index];
    c.field(r, "rootstock_selected", want);
    c.field(r, "ostree_booted", want);
    c.field(r, "ostree_booted_index", &index.to_string());
    c.field(r, "version", &(s.image.deployments.len() - index).to_string());
    c.field(r, "bless_active", "active");
    c.field(r, "bless_result", "success");
    c.field(r, "bless_exit", "0");
    let us = |k: &str| r.get(k).and_then(|v| v.parse::<u64>().ok());
    let (bless, complete) = (us("bless_start_us"), us("boot_complete_us"));
    c.check(
        "rootstock-bless.service started after boot-complete.target was reached",
        matches!((bless, complete), (Some(b), Some(t)) if t > 0 && b >= t),
        format!("bless started {bless:?} us, boot-complete.target {complete:?} us (monotonic)"),
    );
    c.field(r, "usr_ro", "yes");
    c.field(r, "etc_rw", "yes");
    c.field(r, "var_rw", "yes");
    c.field(r, "sysroot_is_physical", "yes");
    c.field(r, "ostree_booted_file", "yes");
    // rootstock's /run/ostree/initramfs-mount-var told ostree-system-generator
    // (which consumes it) that /var is mounted: no var.mount of its own.
    c.field(r, "run_ostree_dir", "yes");
    c.field(r, "initramfs_mount_var_left", "no");
    c.field(r, "var_mount_unit", "");
    c.field(r, "var_mounts", "1");
    c.field(r, "boot_mounts", "1");
    let mounts = r.mounts();
    let mount = |m: &str| mounts.iter().filter(|(p, _)| *p == m).map(|(_, v)| *v).collect::<Vec<_>>();
    let (usr, etc, var) = (mount("/usr"), mount("/etc"), mount("/var"));
    c.check("/usr mounted read-only", usr.len() == 1 && usr[0].contains(":ro:"), format!("{usr:?}"));
    c.check("/etc mounted read-write", etc.len() == 1 && etc[0].contains(":rw:"), format!("{etc:?}"));
    c.check(
        "/var is the stateroot's var, read-write, mounted once",
        var.len() == 1 && var[0].contains(":rw:") && var[0].ends_with(":/ostree/deploy/debian/var"),
        format!("{var:?}"),
    );
    let boot = mount("/boot");
    c.check(
        "/boot is the physical root's /boot (ostree admin status reads it)",
        boot.len() == 1 && boot[0].ends_with(":/boot"),
        format!("{boot:?}"),
    );
    c.field(r, "kernel", &s.image.kernel.version);
}

/// The shared fixture: the trixie image booted once into the default with
/// boot counting armed (3 tries), which systemd's boot-complete blesses;
/// with that boot. The rollback scenario boots it again from there.
struct Booted1 {
    s: TrixieScenario,
    first: TrixieBoot,
}

fn booted_once() -> &'static Booted1 {
    static FIXTURE: Fixture<Booted1> = Fixture::new();
    FIXTURE.get(|| {
        let s = TrixieScenario::new("trixie-systemd").unwrap();
        let first = s.boot(0, &s.cmdline(0, "rootstock.tries=3")).unwrap();
        Booted1 { s, first }
    })
}

/// The deployment ids without their stateroot (`testos/ID` → `ID`).
fn ids(s: &TrixieScenario) -> (&str, &str) {
    let id = |i: usize| {
        s.image.deployments[i].split_once('/').map_or(s.image.deployments[i].as_str(), |(_, id)| id)
    };
    (id(0), id(1))
}

/// The default, with boot counting armed: systemd reaches multi-user and
/// the deployment is blessed (good) after this one try.
#[test]
fn trixie_boots_to_multi_user_through_rootstock() {
    if !can_run() {
        return;
    }
    let f = booted_once();
    let (s, r) = (&f.s, &f.first.booted.report);
    let mut c = Checks::default();
    common_checks(&mut c, r, s, 0);
    let (id0, id1) = ids(s);
    let state = r.get("rootstock_state").unwrap_or("");
    c.check(
        "counting armed by rootstock.tries=3: this boot took one try",
        state.contains("counting=indeterminate (2 left, 1 done)") && state.contains("reason=default"),
        state.to_string(),
    );
    c.field(r, "rootstock_deployments", &format!("0:{id0}:good:booted 1:{id1}:never"));
    c.finish("trixie-systemd boot 1 (default, rootstock.tries=3)", r);
}

/// After that boot, the rollback by a one-shot manual choice: counts no
/// tries, and the default stays good.
#[test]
fn trixie_boots_the_rollback_by_manual_choice() {
    if !can_run() {
        return;
    }
    let s = &booted_once().s;
    let b = s.boot(1, &s.cmdline(0, "rootstock.tries=3 rootstock.deployment=1")).unwrap();
    let r = &b.booted.report;
    let mut c = Checks::default();
    common_checks(&mut c, r, s, 1);
    let (id0, id1) = ids(s);
    let state = r.get("rootstock_state").unwrap_or("");
    c.check("manual choice, counted no try", state.contains("reason=manual"), state.to_string());
    c.field(r, "rootstock_deployments", &format!("0:{id0}:good 1:{id1}:good:booted"));
    c.finish("trixie-systemd boot 2 (rootstock.deployment=1)", r);
}
