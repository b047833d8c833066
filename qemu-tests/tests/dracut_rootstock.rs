//! rootstock's dracut module (dracut-module/98rootstock) in Debian 12's
//! dracut 059 images: with systemd (rootstock-prepare-root.service), with
//! dracut's shell init (the pre-pivot hook), next to ostree-boot's `ostree`
//! module (which it must replace), on a boot that is not an OSTree boot, and
//! timed against the dracut + ostree baseline.
//!
//! The images need rootstock's static binary (`make static`, or
//! `ROOTSTOCK_BOOT_BIN`); see qemu-tests/src/dracut.rs for how the module
//! reaches dracut without being installed on the host.

use rootstock_qemu_tests::{
    Console, DiskSpec, DracutSpec, Fixture, Report, Scenario, TestOs, assert_field, assert_laid_out, can_run,
    dracut_initramfs, run,
};
use std::path::Path;
use std::process::Command;

/// The shared fixture: two deployments, each boot seeing the disk as made.
fn two() -> &'static Scenario {
    static TWO: Fixture<Scenario> = Fixture::new();
    TWO.get(|| {
        let mut s = Scenario::new("dracut-two", &TestOs { deployments: 2, ..Default::default() }).unwrap();
        s.snapshot = true;
        s
    })
}

/// The fields of `mounts` for mount point `at` (one per mount, in order).
fn mounts_at<'a>(r: &'a Report, at: &str) -> Vec<&'a str> {
    r.mounts().into_iter().filter(|(m, _)| *m == at).map(|(_, v)| v).collect()
}

/// What the test OS sees after rootstock laid out `version` for `reason`:
/// /usr read-only, /etc its own writable mount, /var the stateroot's, bound
/// by the initramfs (rootstock), /sysroot the physical root, and
/// /run/rootstock/state.
fn assert_rootstock_layout(r: &Report, version: &str, reason: &str) {
    assert_laid_out(r, version);
    let state = r.get("rootstock_state").unwrap_or("none");
    assert!(state.contains(&format!("reason={reason}")), "rootstock_state: want reason={reason}:\n{r}");
    assert!(state.contains("selected=testos/"), "{r}");
    let etc = mounts_at(r, "/etc");
    assert!(
        etc.iter().any(|m| m.contains(":rw:") && m.ends_with("/etc")),
        "/etc is not its own rw mount:\n{r}"
    );
    let var = mounts_at(r, "/var");
    assert!(
        var.iter().any(|m| m.ends_with(":/ostree/deploy/testos/var")),
        "/var is not the stateroot's:\n{r}"
    );
}

/// rootstock's own log line (stderr, "rootstock: booting STATEROOT/CSUM.SERIAL
/// (index N, REASON)") reached the console.
fn assert_rootstock_logged(c: &Console, reason: &str) {
    let line = c.find("rootstock: booting ").unwrap_or_else(|| {
        panic!("no `rootstock: booting` line on the console ({}):\n{}", c.log.display(), c.tail(60))
    });
    assert!(line.text.contains(&format!(", {reason})")), "{}", line.text);
}

/// The initramfs's journal (systemd images), carried into the booted system
/// in /run/log/journal, holds rootstock's booting line and nothing from
/// ostree-prepare-root.
fn assert_rootstock_journaled(r: &Report, reason: &str) {
    let journal = r.get("journal").unwrap_or("none");
    assert!(
        journal
            .split(';')
            .any(|l| l.starts_with("rootstock: booting testos/") && l.ends_with(&format!(", {reason})"))),
        "rootstock's booting line is not in the initramfs's journal: journal={journal}"
    );
    assert!(!journal.contains("ostree-prepare-root"), "ostree-prepare-root logged to the journal: {journal}");
}

/// Neither ostree-prepare-root nor its unit ran.
fn assert_no_ostree_prepare_root(c: &Console) {
    for l in c.texts() {
        assert!(
            !l.contains("ostree-prepare-root") && !l.contains("OSTree Prepare OS"),
            "ostree-prepare-root ran or was started ({}): {l}",
            c.log.display()
        );
    }
}

fn image_listing(image: &Path) -> String {
    run(Command::new("lsinitrd").arg(image)).unwrap()
}

/// The entry in an lsinitrd listing for `path` (relative, e.g.
/// `usr/lib/rootstock/rootstock-boot`), with its symlink target if any.
fn listed<'a>(listing: &'a str, path: &str) -> Option<&'a str> {
    listing.lines().find(|l| l.ends_with(&format!(" {path}")) || l.contains(&format!(" {path} -> ")))
}

#[test]
fn dracut_rootstock_boots_default_deployment() {
    if !can_run() {
        return;
    }
    let s = two();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::rootstock()).unwrap();
    let listing = image_listing(&initrd);
    assert!(listed(&listing, "usr/lib/rootstock/rootstock-boot").is_some(), "{listing}");
    let wants = "etc/systemd/system/initrd-root-fs.target.wants/rootstock-prepare-root.service";
    assert!(listed(&listing, wants).is_some(), "the unit is not wanted by initrd-root-fs.target:\n{listing}");
    let b = s.boot(Some(&initrd), &s.cmdline(0)).unwrap();
    assert_rootstock_layout(&b.report, "2", "default");
    assert_field(&b.report, "kernel", &s.kernel.version);
    assert_rootstock_logged(&b.console, "default");
    assert_rootstock_journaled(&b.report, "default");
}

/// The rollback by a manual choice, then the default, then the rollback
/// again: /var is shared by the deployments, /etc is per deployment and
/// persists across reboots.
#[test]
fn dracut_rootstock_manual_rollback_shares_var_and_keeps_etc() {
    if !can_run() {
        return;
    }
    let s = two().copy("dracut-rootstock-manual").unwrap();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::rootstock()).unwrap();
    let rollback = format!("{} rootstock.deployment=1", s.cmdline(0));
    let b = s.boot(Some(&initrd), &rollback).unwrap();
    assert_rootstock_layout(&b.report, "1", "manual");
    assert_rootstock_logged(&b.console, "manual");
    assert_rootstock_journaled(&b.report, "manual");
    assert_field(&b.report, "var_marker", "none");
    assert_field(&b.report, "etc_marker", "none");

    let r = s.boot(Some(&initrd), &s.cmdline(0)).unwrap().report;
    assert_rootstock_layout(&r, "2", "default");
    assert_field(&r, "var_marker", "written-by-1");
    assert_field(&r, "etc_marker", "none");

    let r = s.boot(Some(&initrd), &rollback).unwrap().report;
    assert_rootstock_layout(&r, "1", "manual");
    assert_field(&r, "var_marker", "written-by-2");
    assert_field(&r, "etc_marker", "written-by-1");
}

#[test]
fn dracut_rootstock_without_systemd_boots_default_deployment() {
    if !can_run() {
        return;
    }
    let s = two();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::rootstock_no_systemd()).unwrap();
    let listing = image_listing(&initrd);
    assert!(
        listed(&listing, "usr/lib/dracut/hooks/pre-pivot/50-rootstock-pre-pivot.sh").is_some(),
        "{listing}"
    );
    assert!(listed(&listing, "usr/lib/systemd/systemd").is_none(), "a systemd image:\n{listing}");
    let b = s.boot(Some(&initrd), &s.cmdline(0)).unwrap();
    assert_rootstock_layout(&b.report, "2", "default");
    assert_rootstock_logged(&b.console, "default");
}

#[test]
fn dracut_with_ostree_and_rootstock_runs_only_rootstock() {
    if !can_run() {
        return;
    }
    let s = two();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::rootstock_with_ostree()).unwrap();
    let listing = image_listing(&initrd);
    // ostree's module installed its unit; rootstock's masked it.
    assert!(listed(&listing, "usr/lib/ostree/ostree-prepare-root").is_some(), "{listing}");
    let mask = listed(&listing, "etc/systemd/system/ostree-prepare-root.service");
    assert!(
        mask.is_some_and(|l| l.ends_with("-> /dev/null")),
        "ostree-prepare-root.service not masked: {mask:?}"
    );
    let b = s.boot(Some(&initrd), &s.cmdline(0)).unwrap();
    assert_rootstock_layout(&b.report, "2", "default");
    assert_rootstock_logged(&b.console, "default");
    assert_rootstock_journaled(&b.report, "default");
    assert_no_ostree_prepare_root(&b.console);
}

#[test]
fn dracut_with_ostree_and_rootstock_without_systemd_runs_only_rootstock() {
    if !can_run() {
        return;
    }
    let s = two();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::rootstock_with_ostree_no_systemd()).unwrap();
    let b = s.boot(Some(&initrd), &s.cmdline(0)).unwrap();
    assert_rootstock_layout(&b.report, "2", "default");
    assert_rootstock_logged(&b.console, "default");
    assert_no_ostree_prepare_root(&b.console);
}

/// The default deployment without an init, each boot seeing the disk as made.
fn noinit() -> &'static Scenario {
    static NOINIT: Fixture<Scenario> = Fixture::new();
    NOINIT.get(|| {
        let os = TestOs { deployments: 2, ..Default::default() };
        let mut s = Scenario::custom(
            "dracut-rootstock-fallback",
            &os,
            |sys| sys.remove_init(0),
            &DiskSpec::default(),
        )
        .unwrap();
        s.snapshot = true;
        s
    })
}

/// rootstock's fallbacks in dracut's systemd image: deployment 1 boots
/// (`reason=fallback`), the state names what was skipped, and systemd
/// switches root into what rootstock laid out.
fn dracut_falls_back(append: &str, skipped: &[&str]) {
    let s = noinit();
    let initrd = dracut_initramfs(&s.kernel, &DracutSpec::rootstock()).unwrap();
    let b = s.boot(Some(&initrd), append).unwrap();
    let r = &b.report;
    assert_rootstock_layout(r, "1", "fallback");
    let state = r.get("rootstock_state").unwrap_or("none");
    for want in skipped {
        assert!(state.contains(want), "rootstock_state should contain {want:?}: {state}");
    }
    assert!(
        b.console.find("booting fallback deployment testos/").is_some(),
        "no fallback warning on the console ({})",
        b.console.log.display()
    );
}

/// The default deployment has no init: the default is skipped for deployment 1.
#[test]
fn dracut_rootstock_falls_back_from_a_deployment_without_init() {
    if !can_run() {
        return;
    }
    dracut_falls_back(&noinit().cmdline(0), &["no executable init"]);
}

/// A garbage `ostree=` too: both it and the default are skipped over to
/// deployment 1.
#[test]
fn dracut_rootstock_falls_back_over_a_garbage_ostree_and_a_deployment_without_init() {
    if !can_run() {
        return;
    }
    let s = noinit();
    let default_ostree = format!("ostree={}", s.entries[0].ostree_arg().unwrap());
    let append = s.cmdline(0).replace(&default_ostree, "ostree=/x");
    dracut_falls_back(&append, &["skipped=ostree=/x", "no executable init"]);
}

/// Make the physical root of `s`'s image bootable as a plain, non-OSTree
/// root: `/usr` a symlink to deployment `dir`'s usr, `/bin`, `/sbin`, `/lib`
/// into it (so /sbin/init is the test OS's init, and os-release exists).
fn make_physical_root_bootable(s: &Scenario) {
    let ls = run(Command::new("debugfs").args(["-R", "ls -l /ostree/deploy/testos/deploy"]).arg(&s.image))
        .unwrap();
    let dir = ls
        .split_whitespace()
        .find(|w| w.len() > 64 && !w.ends_with(".origin"))
        .unwrap_or_else(|| panic!("no deployment directory in the image:\n{ls}"));
    let cmds = s.work.join("plain-root.debugfs");
    std::fs::write(
        &cmds,
        format!(
            "symlink /usr ostree/deploy/testos/deploy/{dir}/usr\n\
             symlink /bin usr/bin\nsymlink /sbin usr/sbin\nsymlink /lib usr/lib\n"
        ),
    )
    .unwrap();
    run(Command::new("debugfs").arg("-w").arg("-f").arg(&cmds).arg(&s.image)).unwrap();
}

/// A copy of the shared disk whose physical root boots as a plain root
/// ([`make_physical_root_bootable`]), each boot seeing it as made.
fn plain_root() -> &'static Scenario {
    static PLAIN: Fixture<Scenario> = Fixture::new();
    PLAIN.get(|| {
        let mut s = two().copy("dracut-rootstock-not-ostree").unwrap();
        make_physical_root_bootable(&s);
        s.snapshot = true;
        s
    })
}

/// Without `ostree=`, rootstock does not run from the image `spec` makes:
/// the physical root itself boots.
fn dracut_does_nothing_without_ostree_arg(spec: &DracutSpec) {
    let s = plain_root();
    let ostree = format!("ostree={}", s.entries[0].ostree_arg().unwrap());
    let append = s.cmdline(0).replace(&ostree, "");
    assert!(!append.contains("ostree"), "{append}");
    let initrd = dracut_initramfs(&s.kernel, spec).unwrap();
    let b = s.boot(Some(&initrd), &append).unwrap();
    let r = &b.report;
    assert_field(r, "rootstock_state", "none");
    assert_field(r, "ostree_booted", "no");
    // The physical root: /sysroot is not bound, /usr is not a mount.
    assert_field(r, "sysroot_is_physical", "no");
    assert!(mounts_at(r, "/usr").is_empty(), "{r}");
    // (the unit's description, "rootstock: lay out ...", is no message of rootstock's)
    assert!(
        b.console.texts().all(|l| !l.contains("rootstock: ") || l.contains("rootstock: lay out")),
        "rootstock printed something ({}):\n{}",
        b.console.log.display(),
        b.console.tail(60)
    );
}

/// The unit's ConditionKernelCommandLine=ostree keeps rootstock from running.
#[test]
fn dracut_rootstock_does_nothing_without_ostree_arg() {
    if !can_run() {
        return;
    }
    dracut_does_nothing_without_ostree_arg(&DracutSpec::rootstock());
}

/// Under dracut's shell init, the hook's `getarg ostree=` does.
#[test]
fn dracut_rootstock_hook_does_nothing_without_ostree_arg() {
    if !can_run() {
        return;
    }
    dracut_does_nothing_without_ostree_arg(&DracutSpec::rootstock_no_systemd());
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Bytes of the image and of its unpacked cpio archive.
fn sizes(image: &Path) -> (u64, u64) {
    let packed = std::fs::metadata(image).unwrap().len();
    let out = run(Command::new("sh")
        .arg("-c")
        .arg("/usr/lib/dracut/skipcpio \"$1\" | zstd -dc | wc -c")
        .arg("sh")
        .arg(image))
    .unwrap();
    (packed, out.trim().parse().unwrap())
}

/// The initramfs phase (the kernel's "Run /init" → the test OS's report, on
/// the guest's clock) of dracut + rootstock against dracut + ostree, each
/// booted twice, alternating, on one disk image; and the images' sizes.
#[test]
fn dracut_rootstock_vs_ostree_initramfs_phase() {
    if !can_run() {
        return;
    }
    let s = two();
    let ostree = dracut_initramfs(&s.kernel, &DracutSpec::ostree_baseline()).unwrap();
    let rootstock = dracut_initramfs(&s.kernel, &DracutSpec::rootstock()).unwrap();
    let (mut t_ostree, mut t_rootstock) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        for (image, times) in [(&ostree, &mut t_ostree), (&rootstock, &mut t_rootstock)] {
            let b = s.boot(Some(image), &s.cmdline(0)).unwrap();
            assert_field(&b.report, "version", "2");
            times.push(b.timings.run_init_to_report.expect("Run /init and report uptime"));
        }
    }
    let (m_ostree, m_rootstock) = (median(&mut t_ostree), median(&mut t_rootstock));
    let ((p_o, u_o), (p_r, u_r)) = (sizes(&ostree), sizes(&rootstock));
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!(
        "[dracut-rootstock-timing] Run /init → report, median of {} boots: dracut+ostree {m_ostree:.2} s \
         {t_ostree:.2?}, dracut+rootstock {m_rootstock:.2} s {t_rootstock:.2?}, ratio rootstock/ostree {:.3}",
        t_ostree.len(),
        m_rootstock / m_ostree
    );
    eprintln!(
        "[dracut-rootstock-timing] image sizes (zstd / unpacked): dracut+ostree {:.2} / {:.2} MB, \
         dracut+rootstock {:.2} / {:.2} MB",
        mb(p_o),
        mb(u_o),
        mb(p_r),
        mb(u_r)
    );
}
