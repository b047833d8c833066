//! The baseline: Debian 12's stock dracut (059) with ostree-boot's `ostree`
//! module (ostree-prepare-root 2022.7) booting the test OS's sysroot.

use rootstock_qemu_tests::{DracutSpec, Scenario, TestOs, assert_field, can_run, dracut_initramfs};
use std::time::Instant;

#[test]
fn baseline_dracut_ostree_boots_default_deployment() {
    if !can_run() {
        return;
    }
    let t = Instant::now();
    let s = Scenario::new("baseline-default", &TestOs { deployments: 2, ..Default::default() }).unwrap();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::ostree_baseline()).unwrap();
    let b = s.boot(Some(&initrd), &s.cmdline(0)).unwrap();
    let r = &b.report;
    assert_field(r, "version", "2");
    assert_field(r, "usr_ro", "yes");
    assert_field(r, "etc_rw", "yes");
    assert_field(r, "sysroot_is_physical", "yes");
    assert_field(r, "kernel", &s.kernel.version);
    let journal = r.get("journal").unwrap_or("none");
    assert!(journal.contains("SYSLOG_IDENTIFIER=ostree-prepare-root"), "journal={journal}");
    let ostree = s.entries[0].ostree_arg().unwrap();
    assert!(r.get("cmdline").unwrap().contains(&format!("ostree={ostree}")), "{r}");
    eprintln!(
        "[baseline-default] initramfs {} ({} bytes); scenario wall time {:.1} s",
        initrd.display(),
        std::fs::metadata(&initrd).unwrap().len(),
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn baseline_dracut_ostree_boots_rollback_and_shares_var() {
    if !can_run() {
        return;
    }
    let t = Instant::now();
    let s = Scenario::new("baseline-rollback", &TestOs { deployments: 2, ..Default::default() }).unwrap();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::ostree_baseline()).unwrap();
    let first = s.boot(Some(&initrd), &s.cmdline(0)).unwrap().report;
    assert_field(&first, "version", "2");
    assert_field(&first, "var_marker", "none");
    assert_field(&first, "etc_marker", "none");
    let second = s.boot(Some(&initrd), &s.cmdline(1)).unwrap().report;
    assert_field(&second, "version", "1");
    // /var is the stateroot's, shared by deployments; /etc is per deployment.
    assert_field(&second, "var_marker", "written-by-2");
    assert_field(&second, "etc_marker", "none");
    assert_field(&second, "usr_ro", "yes");
    assert_field(&second, "sysroot_is_physical", "yes");
    let third = s.boot(Some(&initrd), &s.cmdline(0)).unwrap().report;
    assert_field(&third, "version", "2");
    assert_field(&third, "var_marker", "written-by-1");
    assert_field(&third, "etc_marker", "written-by-2");
    eprintln!("[baseline-rollback] scenario wall time {:.1} s", t.elapsed().as_secs_f64());
}
