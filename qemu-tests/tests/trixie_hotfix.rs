//! `ostree admin unlock --hotfix` on the Debian trixie test OS, and a file
//! installed under /usr; after a reboot through rootstock's own initramfs,
//! and again through dracut with rootstock's module, the file is there,
//! /usr is the hotfix overlay, and the OS's own `ostree admin status` shows
//! the deployment unlocked. The reboots use the boot loader entries as
//! `unlock` rewrote them (its rollback clone changed the boot version),
//! read from the disk, as a boot loader would.

use rootstock_qemu_tests::trixie::TrixieScenario;
use rootstock_qemu_tests::{CONSOLE_ARGS, Checks, DracutSpec, Report, can_run, dracut_initramfs};

/// The hotfix is there, as the booted OS sees it.
fn hotfix_checks(label: &str, r: &Report, deployment: &str) {
    let mut c = Checks::default();
    c.field(r, "failed_units", "none");
    c.field(r, "rootstock_selected", deployment);
    c.field(r, "ostree_booted", deployment);
    c.field(r, "ostree_booted_index", "0");
    c.field(r, "hotfix_file", "hotfix");
    c.field(r, "usr_fstype", "overlay");
    c.field(r, "usr_ro", "no");
    c.field(r, "ostree_unlocked", "hotfix");
    c.field(r, "etc_rw", "yes");
    c.field(r, "var_rw", "yes");
    let state = r.get("rootstock_state").unwrap_or("");
    c.check("booted as the default", state.contains("reason=default"), state);
    c.finish(label, r);
}

#[test]
fn trixie_hotfix_survives_reboots_through_rootstock_and_dracut() {
    if !can_run() {
        return;
    }
    let s = TrixieScenario::new("trixie-hotfix").unwrap();
    let deployment = s.image.deployments[0].clone();

    // Boot 1: unlock the booted default for hotfixes, install a file.
    let b = s.boot(0, &s.cmdline(0, "testos.hotfix=install")).unwrap();
    let r = &b.booted.report;
    assert_eq!(r.get("hotfix_install"), Some("ok"), "unlock --hotfix in the guest:\n{r}");
    assert_eq!(r.get("ostree_unlocked"), Some("hotfix"), "{r}");

    // The entries as `unlock` left them: the unlocked deployment is still
    // the default, its clone the rollback.
    let options = s.entry_options().unwrap();
    assert_eq!(options.len(), 2, "{options:?}");
    let append = format!("{CONSOLE_ARGS} {}", options[0]);

    // Boot 2: rootstock's initramfs (the one ostree copied to /boot).
    let b2 = s.boot(0, &append).unwrap();
    hotfix_checks("trixie-hotfix boot 2 (rootstock's initramfs)", &b2.booted.report, &deployment);

    // Boot 3: dracut with rootstock's module (rootstock-prepare-root.service).
    let initrd = dracut_initramfs(&s.image.kernel, &DracutSpec::rootstock()).unwrap();
    let mut q = s.qemu(0, &append).unwrap();
    q.initrd = Some(initrd);
    let b3 = s.run(&q).unwrap();
    hotfix_checks("trixie-hotfix boot 3 (dracut + rootstock)", &b3.booted.report, &deployment);
}
