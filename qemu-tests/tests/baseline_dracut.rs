//! The baseline: Debian 12's stock dracut (059) with ostree-boot's `ostree`
//! module (ostree-prepare-root 2022.7) booting the test OS's sysroot.

use rootstock_qemu_tests::{
    Booted, DracutSpec, Fixture, Scenario, TestOs, assert_field, can_run, dracut_initramfs,
};
use std::path::PathBuf;

/// The shared fixture: two deployments booted once into the default by
/// dracut + ostree (which writes the default's markers into `/var` and its
/// `/etc`); with the image and that boot.
struct Booted1 {
    s: Scenario,
    initrd: PathBuf,
    first: Booted,
}

fn booted_once() -> &'static Booted1 {
    static FIXTURE: Fixture<Booted1> = Fixture::new();
    FIXTURE.get(|| {
        let s = Scenario::new("baseline", &TestOs { deployments: 2, ..Default::default() }).unwrap();
        let initrd = dracut_initramfs(&s.kernel, &DracutSpec::ostree_baseline()).unwrap();
        let first = s.boot(Some(&initrd), &s.cmdline(0)).unwrap();
        Booted1 { s, initrd, first }
    })
}

#[test]
fn baseline_dracut_ostree_boots_default_deployment() {
    if !can_run() {
        return;
    }
    let Booted1 { s, first, .. } = booted_once();
    let r = &first.report;
    assert_field(r, "version", "2");
    assert_field(r, "usr_ro", "yes");
    assert_field(r, "etc_rw", "yes");
    assert_field(r, "sysroot_is_physical", "yes");
    assert_field(r, "kernel", &s.kernel.version);
    assert_field(r, "var_marker", "none");
    assert_field(r, "etc_marker", "none");
    let journal = r.get("journal").unwrap_or("none");
    assert!(journal.contains("SYSLOG_IDENTIFIER=ostree-prepare-root"), "journal={journal}");
    let ostree = s.entries[0].ostree_arg().unwrap();
    assert!(r.get("cmdline").unwrap().contains(&format!("ostree={ostree}")), "{r}");
}

/// After the default's boot, the rollback, then the default again (on a
/// copy of the disk): /var is the stateroot's, shared by deployments; /etc
/// is per deployment.
#[test]
fn baseline_dracut_ostree_boots_rollback_and_shares_var() {
    if !can_run() {
        return;
    }
    let f = booted_once();
    let s = f.s.copy("baseline-rollback").unwrap();
    let second = s.boot(Some(&f.initrd), &s.cmdline(1)).unwrap().report;
    assert_field(&second, "version", "1");
    assert_field(&second, "var_marker", "written-by-2");
    assert_field(&second, "etc_marker", "none");
    assert_field(&second, "usr_ro", "yes");
    assert_field(&second, "sysroot_is_physical", "yes");
    let third = s.boot(Some(&f.initrd), &s.cmdline(0)).unwrap().report;
    assert_field(&third, "version", "2");
    assert_field(&third, "var_marker", "written-by-1");
    assert_field(&third, "etc_marker", "written-by-2");
}
