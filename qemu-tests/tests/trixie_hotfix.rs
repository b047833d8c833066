//! `ostree admin unlock --hotfix` on the Debian trixie test OS, and a file
//! installed under /usr; after a reboot through rootstock's own initramfs,
//! and again through dracut with rootstock's module, the file is there,
//! /usr is the hotfix overlay, and the OS's own `ostree admin status` shows
//! the deployment unlocked. The reboots use the boot loader entries as
//! `unlock` rewrote them (its rollback clone changed the boot version),
//! read from the disk, as a boot loader would.

use rootstock_qemu_tests::trixie::TrixieScenario;
use rootstock_qemu_tests::{CONSOLE_ARGS, DracutSpec, Report, can_run, dracut_initramfs};
use std::time::Instant;

fn check(checks: &mut Vec<(String, bool, String)>, r: &Report, key: &str, want: &str) {
    let got = r.get(key).unwrap_or("<missing>");
    checks.push((format!("{key} = {want}"), got == want, format!("got {got}")));
}

/// The hotfix is there, as the booted OS sees it.
fn hotfix_checks(label: &str, r: &Report, deployment: &str) {
    let mut c = Vec::new();
    check(&mut c, r, "failed_units", "none");
    check(&mut c, r, "rootstock_selected", deployment);
    check(&mut c, r, "ostree_booted", deployment);
    check(&mut c, r, "ostree_booted_index", "0");
    check(&mut c, r, "hotfix_file", "hotfix");
    check(&mut c, r, "usr_fstype", "overlay");
    check(&mut c, r, "usr_ro", "no");
    check(&mut c, r, "ostree_unlocked", "hotfix");
    check(&mut c, r, "etc_rw", "yes");
    check(&mut c, r, "var_rw", "yes");
    let state = r.get("rootstock_state").unwrap_or("");
    c.push(("booted as the default".into(), state.contains("reason=default"), state.into()));
    eprintln!("[{label}] checks:");
    for (name, ok, detail) in &c {
        eprintln!("  {} {name}  ({detail})", if *ok { "PASS" } else { "FAIL" });
    }
    let failed: Vec<&str> = c.iter().filter(|r| !r.1).map(|r| r.0.as_str()).collect();
    assert!(failed.is_empty(), "[{label}] failed checks: {failed:?}\nwhole report:\n{r}");
}

#[test]
fn trixie_hotfix_survives_reboots_through_rootstock_and_dracut() {
    if !can_run() {
        return;
    }
    let t = Instant::now();
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

    eprintln!(
        "[trixie-hotfix] boot 1: {}\n[trixie-hotfix] boot 2: {}\n[trixie-hotfix] boot 3: {}\n\
         [trixie-hotfix] scenario wall time {:.1} s",
        b.phases,
        b2.phases,
        b3.phases,
        t.elapsed().as_secs_f64()
    );
}
