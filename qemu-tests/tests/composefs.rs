//! composefs through rootstock's own initramfs under Debian 13's kernel
//! (6.12), one story on one disk (qemu-tests/src/composefs.rs): fs-verity
//! enabled in the guest, then `composefs.enabled = verity` and `signed`
//! (ostree's `prepare-root.conf` and its signing key in the initramfs,
//! `ostree.prepare-root.composefs=` on the command line), then the disk
//! tampered with as someone holding it could: what boots and what does not.

use rootstock_qemu_tests::composefs::composefs_disk;
use rootstock_qemu_tests::{
    Booted, DracutSpec, Report, assert_field, can_run, dracut_initramfs, repo_root,
    rootstock_initramfs_with_extras, run_qemu,
};
use std::time::Duration;

/// The topmost mount on `point` in the report: "fstype:ro|rw:root-in-fs".
fn mount<'a>(r: &'a Report, point: &str) -> &'a str {
    r.mounts().into_iter().rev().find(|(p, _)| *p == point).map(|(_, m)| m).unwrap_or("(not mounted)")
}

fn console_has(b: &Booted, text: &str) -> bool {
    b.console.find(text).is_some()
}

#[test]
fn composefs_with_verity_and_a_signed_commit_under_debian_13s_kernel() {
    if !can_run() {
        return;
    }
    let disk = composefs_disk("composefs").unwrap();
    let s = &disk.scenario;
    // The QEMU set with EROFS (and loop devices, for an image EROFS
    // cannot take as a file); ostree's configuration asking for verity;
    // the key that signed deployment 0's commit.
    let list = s.work.join("composefs.list");
    let qemu_list = std::fs::read_to_string(repo_root().join("initramfs/qemu.list")).unwrap();
    std::fs::write(&list, format!("{qemu_list}\n# composefs\nerofs\nloop\n")).unwrap();
    let conf = s.work.join("prepare-root.conf");
    std::fs::write(&conf, "[composefs]\nenabled = verity\n").unwrap();
    let key = s.work.join("initramfs-root-binding.key");
    std::fs::write(&key, format!("{}\n", disk.public_key)).unwrap();
    let extras = [
        format!("{}:usr/lib/ostree/prepare-root.conf", conf.display()),
        format!("{}:etc/ostree/initramfs-root-binding.key", key.display()),
    ];
    let extras: Vec<&str> = extras.iter().map(String::as_str).collect();
    let initrd = rootstock_initramfs_with_extras(&s.kernel, list.to_str().unwrap(), &extras).unwrap();
    let append = |index: usize, extra: &str| format!("{} {extra}", s.cmdline(index)).trim_end().to_string();
    let boot = |index: usize, extra: &str| s.boot(Some(&initrd), &append(index, extra)).unwrap();
    // A boot that must stop in the initramfs: its console.
    let fails = |index: usize, extra: &str| {
        let mut q = s.qemu(Some(&initrd), &append(index, &format!("{extra} rootstock.on-failure=poweroff")));
        q.timeout = Duration::from_secs(240);
        let c = run_qemu(&q).unwrap();
        assert!(c.find("no deployment could be laid out").is_some(), "{}", c.log.display());
        assert!(c.find("ROOTSTOCK-REPORT-BEGIN").is_none(), "{}", c.log.display());
        c
    };

    // Before fs-verity is enabled: under `verity`, every image is refused
    // (measured on the file that is mounted: ENODATA), nothing boots.
    let c = fails(0, "");
    let refused = c.lines.iter().filter(|l| l.text.contains("composefs image") && l.text.contains("ENODATA"));
    assert!(refused.count() >= 3, "each of the three deployments refused: {}", c.log.display());

    // fs-verity on every object and image, enabled by the guest's kernel
    // (a plain boot: the kernel argument overrides the file, as ostree's).
    let b = boot(0, "ostree.prepare-root.composefs=no testos.hook=verity");
    assert_field(&b.report, "hook", "ok");
    assert!(!mount(&b.report, "/").starts_with("overlay"), "composefs=no: the plain tree\n{}", b.report);

    // verity: the root is the image over the objects, read-only as a whole;
    // counted, and blessed from the booted system (`rootstock bless` finds
    // the deployment behind the overlay).
    let b = boot(0, "rootstock.tries=3 testos.bless=1");
    assert_field(&b.report, "bless", "ok");
    assert!(b.report.get("counting").is_some_and(|c| c.starts_with("good")), "{}", b.report);
    assert_field(&b.report, "version", "2");
    assert!(mount(&b.report, "/").starts_with("overlay:ro"), "{}", b.report);
    assert_field(&b.report, "usr_ro", "yes");
    assert_field(&b.report, "etc_rw", "yes");
    assert_field(&b.report, "var_rw", "yes");
    assert_field(&b.report, "sysroot_is_physical", "yes");

    // signed: deployment 0's commit is signed by the key, and its image has
    // the digest the commit names.
    let b = boot(0, "ostree.prepare-root.composefs=signed");
    assert_field(&b.report, "version", "2");
    assert!(console_has(&b, "its commit is signed by a configured key"), "{}", b.console.log.display());
    // The same through dracut's systemd initramfs with rootstock's module
    // (its prepare-root.conf and key included as an image build would copy
    // them from the host): the composefs root, loaded by systemd's modprobe.
    let mut spec = DracutSpec::rootstock();
    for (file, dest) in
        [(&conf, "/usr/lib/ostree/prepare-root.conf"), (&key, "/etc/ostree/initramfs-root-binding.key")]
    {
        spec.extra_args.extend(["--include".to_string(), file.display().to_string(), dest.to_string()]);
    }
    let dracut = dracut_initramfs(&s.kernel, &spec).unwrap();
    let b = s.boot(Some(&dracut), &append(0, "ostree.prepare-root.composefs=signed")).unwrap();
    assert_field(&b.report, "version", "2");
    assert!(mount(&b.report, "/").starts_with("overlay:ro"), "dracut: {}", b.report);
    assert!(console_has(&b, "its commit is signed by a configured key"), "{}", b.console.log.display());
    // Deployment 1's commit is not signed: refused, and the signed one boots.
    let b = boot(1, "ostree.prepare-root.composefs=signed");
    assert!(console_has(&b, "No commitmeta for commit"), "{}", b.console.log.display());
    let state = b.report.get("rootstock_state").unwrap_or_default();
    assert!(state.contains("reason=fallback") && state.contains("index=0"), "{state}");

    // Someone with the disk in hand: deployment 0's image swapped for
    // deployment 2's (fs-verity and all), and the object of version 2's
    // version file replaced by version 1's.
    let b = boot(0, "ostree.prepare-root.composefs=no testos.hook=tamper");
    assert_field(&b.report, "hook", "ok");
    // verity binds the objects to an image, not an image to a deployment:
    // deployment 0 now shows version 1's tree...
    let b = boot(0, "");
    assert_field(&b.report, "version", "1");
    // ...and an object that is not the one the image names cannot be read.
    let b = boot(1, "");
    assert_field(&b.report, "version", "");
    assert!(console_has(&b, "Input/output error"), "{}", b.console.log.display());
    // signed binds the image to the commit: deployment 0 is refused, and
    // the other two are not signed: nothing boots, and the console says why.
    let c = fails(0, "ostree.prepare-root.composefs=signed");
    let log = c.log.display();
    assert!(
        c.find("mount the deployment's composefs image").is_some_and(|l| l.text.contains("EBADMSG")),
        "{log}"
    );
    eprintln!("composefs: signed commit's image digest {}", disk.digest);
}
