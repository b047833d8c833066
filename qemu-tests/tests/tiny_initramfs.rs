//! rootstock's own tiny initramfs (`rootstock mkinitramfs --modules qemu`:
//! the static binary as /init, virtio + ext4/xfs modules, no udev, no
//! systemd, no shell) booting the busybox test OS's OSTree sysroot. Every
//! scenario that boots asserts on the report printed by the booted test OS;
//! the failure scenarios assert on the console (one adds busybox as the
//! emergency shell).

use rootstock_qemu_tests::{
    Booted, CONSOLE_ARGS, DiskSpec, Fixture, GptSpec, QemuBoot, Report, RootFs, Scenario, Sysroot, TestOs,
    assert_field, assert_laid_out, cache_dir, can_run, debian_kernel, rootstock_initramfs,
    rootstock_initramfs_with_extras, run, run_qemu,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The module set of rootstock's initramfs under QEMU (initramfs/qemu.list).
const SET: &str = "qemu";
/// Fixed identifiers of the disk variants.
const FS_UUID: &str = "5eed7e57-0000-4000-8000-00000000beef";
const PARTUUID: &str = "7e57da7a-0000-4000-8000-0000000000a2";
const PARTLABEL: &str = "rootstock-root";

fn assert_contains(r: &Report, key: &str, want: &str) {
    let v = r.get(key).unwrap_or_default();
    assert!(v.contains(want), "report field {key} should contain {want:?}; whole report:\n{r}");
}

/// The topmost mount on `point` in the report: "fstype:ro|rw:root-in-fs".
fn mount<'a>(r: &'a Report, point: &str) -> &'a str {
    r.mounts().into_iter().rev().find(|(p, _)| *p == point).map(|(_, m)| m).unwrap_or("(not mounted)")
}

/// `options` with its `root=` replaced by `root` and `ostree=` by `ostree`
/// (`None` keeps it), then `extra`.
fn with_args(options: &str, root: &str, ostree: Option<&str>, extra: &str) -> String {
    let words: Vec<String> = options
        .split_whitespace()
        .map(|w| {
            if w.starts_with("root=") {
                format!("root={root}")
            } else if let (Some(o), true) = (ostree, w.starts_with("ostree=")) {
                format!("ostree={o}")
            } else {
                w.to_string()
            }
        })
        .collect();
    format!("{CONSOLE_ARGS} {} {extra}", words.join(" ")).trim_end().to_string()
}

/// A scenario whose deployment ids are recorded: `(scenario, ids)`.
fn scenario(
    name: &str,
    deployments: usize,
    disk: &DiskSpec,
    prepare: impl FnOnce(&mut Sysroot) -> rootstock_qemu_tests::Result<()>,
) -> (Scenario, Vec<String>) {
    let mut ids = Vec::new();
    let s = Scenario::custom(
        name,
        &TestOs { deployments, ..Default::default() },
        |sysroot| {
            prepare(sysroot)?;
            ids = sysroot.deployment_ids()?;
            Ok(())
        },
        disk,
    )
    .unwrap();
    (s, ids)
}

/// Boot through rootstock's initramfs ([`Scenario::boot_rootstock`]).
fn boot(s: &Scenario, append: &str) -> Booted {
    s.boot_rootstock(SET, append).unwrap()
}

/// The state rootstock wrote, as the report shows it (one line).
fn state(r: &Report) -> &str {
    r.get("rootstock_state").unwrap_or_default()
}

/// The shared fixture: two deployments on an ext4 disk with [`FS_UUID`],
/// each boot seeing it as made; with the deployment ids.
fn two() -> &'static (Scenario, Vec<String>) {
    static TWO: Fixture<(Scenario, Vec<String>)> = Fixture::new();
    TWO.get(|| {
        let disk = DiskSpec { uuid: Some(FS_UUID.into()), ..Default::default() };
        let (mut s, ids) = scenario("tiny-two", 2, &disk, |_| Ok(()));
        s.snapshot = true;
        (s, ids)
    })
}

/// The same disk with GPT (an ESP, then the root partition).
fn gpt() -> &'static (Scenario, Vec<String>) {
    static GPT: Fixture<(Scenario, Vec<String>)> = Fixture::new();
    GPT.get(|| {
        let gpt = GptSpec { esp_mb: 8, partuuid: PARTUUID.into(), partlabel: PARTLABEL.into() };
        let disk = DiskSpec { gpt: Some(gpt), ..Default::default() };
        let (mut s, ids) = scenario("tiny-gpt", 2, &disk, |_| Ok(()));
        s.snapshot = true;
        (s, ids)
    })
}

#[test]
fn tiny_boots_default_deployment_by_label() {
    if !can_run() {
        return;
    }
    let (s, ids) = two();
    let options = &s.entries[0].options;
    assert!(options.contains("root=LABEL=testroot"), "{options}");
    let b = boot(s, &s.cmdline(0));
    let r = &b.report;
    assert_laid_out(r, "2");
    assert_field(r, "kernel", &s.kernel.version);
    assert_field(r, "machine", "x86_64");
    assert_contains(r, "cmdline", &format!("ostree={}", s.entries[0].ostree_arg().unwrap()));
    let st = state(r);
    for want in ["reason=default", "index=0", &format!("selected=testos/{}", ids[0]), "init=/sbin/init"] {
        assert!(st.contains(want), "rootstock_state should contain {want}: {st}\n{r}");
    }
    assert!(!st.contains("skipped="), "nothing skipped: {st}");
    // The layout, from the booted OS's mountinfo: each its own mount.
    let dep = format!("/ostree/deploy/testos/deploy/{}", ids[0]);
    assert_eq!(mount(r, "/"), format!("ext4:rw:{dep}"), "{r}");
    assert_eq!(mount(r, "/usr"), format!("ext4:ro:{dep}/usr"), "{r}");
    assert_eq!(mount(r, "/etc"), format!("ext4:rw:{dep}/etc"), "{r}");
    assert_eq!(mount(r, "/var"), "ext4:rw:/ostree/deploy/testos/var", "{r}");
    assert_eq!(mount(r, "/sysroot"), "ext4:rw:/", "the physical root at /sysroot\n{r}");
    for api in ["/dev", "/proc", "/sys", "/run"] {
        assert_ne!(mount(r, api), "(not mounted)", "{api}\n{r}");
    }
}

/// The default deployment with `root=` naming the same disk another way.
fn boots_default_by(s: &Scenario, ids: &[String], root: &str) -> Booted {
    let b = boot(s, &with_args(&s.entries[0].options, root, None, ""));
    let r = &b.report;
    assert_field(r, "version", "2");
    assert_contains(r, "cmdline", &format!("root={root}"));
    assert_contains(r, "rootstock_state", "reason=default");
    assert_contains(r, "rootstock_state", &format!("selected=testos/{}", ids[0]));
    assert_field(r, "usr_ro", "yes");
    b
}

#[test]
fn tiny_boots_default_deployment_by_device_path() {
    if !can_run() {
        return;
    }
    let (s, ids) = two();
    boots_default_by(s, ids, "/dev/vda");
}

#[test]
fn tiny_boots_default_deployment_by_filesystem_uuid() {
    if !can_run() {
        return;
    }
    let (s, ids) = two();
    boots_default_by(s, ids, &format!("UUID={FS_UUID}"));
}

/// A GPT partition by `root=PARTUUID=` (upper case) or `PARTLABEL=`: the
/// default deployment on /dev/vda2, the physical root at /sysroot.
fn boots_gpt_partition_by(root: &str) {
    let (s, ids) = gpt();
    let b = boots_default_by(s, ids, root);
    let r = &b.report;
    assert_eq!(mount(r, "/"), format!("ext4:rw:/ostree/deploy/testos/deploy/{}", ids[0]), "{r}");
    assert_field(r, "sysroot_is_physical", "yes");
    assert!(b.console.find("found root device /dev/vda2").is_some(), "{}", b.console.log.display());
}

#[test]
fn tiny_boots_gpt_partition_by_partuuid() {
    if !can_run() {
        return;
    }
    boots_gpt_partition_by(&format!("PARTUUID={}", PARTUUID.to_uppercase()));
}

#[test]
fn tiny_boots_gpt_partition_by_partlabel() {
    if !can_run() {
        return;
    }
    boots_gpt_partition_by(&format!("PARTLABEL={PARTLABEL}"));
}

/// Three boots of a copy of the shared disk, each seeing the last one's
/// writes.
#[test]
fn tiny_rollback_by_index_and_name_shares_var_and_keeps_etc() {
    if !can_run() {
        return;
    }
    let (shared, ids) = two();
    let s = shared.copy("tiny-rollback").unwrap();
    let default = s.cmdline(0);

    let r = boot(&s, &format!("{default} rootstock.deployment=1")).report;
    assert_field(&r, "version", "1");
    assert_contains(&r, "rootstock_state", "reason=manual");
    assert_contains(&r, "rootstock_state", &format!("selected=testos/{}", ids[1]));
    assert_field(&r, "var_marker", "none");
    assert_field(&r, "etc_marker", "none");
    assert_field(&r, "usr_ro", "yes");
    assert_field(&r, "var_mount", "initramfs");

    // /var written by deployment 1 is seen by 2; /etc is per deployment.
    let r = boot(&s, &default).report;
    assert_field(&r, "version", "2");
    assert_contains(&r, "rootstock_state", "reason=default");
    assert_field(&r, "var_marker", "written-by-1");
    assert_field(&r, "etc_marker", "none");

    // Back to 1 by name: its /etc kept what it wrote a reboot ago, /var has 2's.
    let r = boot(&s, &format!("{default} rootstock.deployment=rollback")).report;
    assert_field(&r, "version", "1");
    assert_contains(&r, "rootstock_state", "reason=manual");
    assert_field(&r, "etc_marker", "written-by-1");
    assert_field(&r, "var_marker", "written-by-2");
    assert_field(&r, "sysroot_is_physical", "yes");
}

#[test]
fn tiny_boots_xfs_root_without_rootfstype() {
    if !can_run() {
        return;
    }
    let disk = DiskSpec { fs: RootFs::Xfs, uuid: Some(FS_UUID.into()), ..Default::default() };
    let (s, ids) = scenario("tiny-xfs", 2, &disk, |_| Ok(()));
    let append = s.cmdline(0);
    assert!(!append.contains("rootfstype"), "{append}");
    let b = boot(&s, &append);
    let r = &b.report;
    assert_field(r, "version", "2");
    assert_field(r, "usr_ro", "yes");
    assert_field(r, "etc_rw", "yes");
    assert_field(r, "var_mount", "initramfs");
    assert_contains(r, "rootstock_state", "reason=default");
    let dep = format!("/ostree/deploy/testos/deploy/{}", ids[0]);
    assert_eq!(mount(r, "/"), format!("xfs:rw:{dep}"), "{r}");
    assert_eq!(mount(r, "/usr"), format!("xfs:ro:{dep}/usr"), "{r}");
    assert_eq!(mount(r, "/sysroot"), "xfs:rw:/", "{r}");
}

/// A btrfs root (made by `mkfs.btrfs --rootdir`), through the generic set
/// (the QEMU set has no btrfs), probed without `rootfstype=`.
#[test]
fn tiny_boots_btrfs_root_with_the_generic_set() {
    if !can_run() {
        return;
    }
    let disk = DiskSpec { fs: RootFs::Btrfs, uuid: Some(FS_UUID.into()), ..Default::default() };
    let (s, ids) = scenario("tiny-btrfs", 2, &disk, |_| Ok(()));
    let append = s.cmdline(0).replace("root=LABEL=testroot", &format!("root=UUID={FS_UUID}"));
    assert!(append.contains("root=UUID=") && !append.contains("rootfstype"), "{append}");
    let initrd = rootstock_initramfs(&s.kernel, "generic").unwrap();
    let b = s.boot(Some(&initrd), &append).unwrap();
    assert!(b.console.find("rootstock: switching root").is_some(), "{}", b.console.log.display());
    let r = &b.report;
    assert_field(r, "version", "2");
    assert_field(r, "usr_ro", "yes");
    assert_field(r, "etc_rw", "yes");
    assert_contains(r, "rootstock_state", "reason=default");
    let dep = format!("/ostree/deploy/testos/deploy/{}", ids[0]);
    assert_eq!(mount(r, "/"), format!("btrfs:rw:{dep}"), "{r}");
    assert_eq!(mount(r, "/usr"), format!("btrfs:ro:{dep}/usr"), "{r}");
    assert_eq!(mount(r, "/sysroot"), "btrfs:rw:/", "{r}");
}

#[test]
fn tiny_stale_ostree_after_deploy_rounds_falls_back_to_default() {
    if !can_run() {
        return;
    }
    let mut stale = String::new();
    let mut history = Vec::new();
    let (s, ids) = scenario("tiny-stale", 2, &DiskSpec::default(), |sys| {
        stale = sys.entries[0].ostree_arg().unwrap().to_string();
        history.push(("initial [v2 v1]", sys.boot_version()?));
        let mut round = |version: u32, retain: bool, what| -> rootstock_qemu_tests::Result<()> {
            sys.commit_version(version)?;
            sys.deploy(retain)?;
            history.push((what, sys.boot_version()?));
            Ok(())
        };
        round(3, true, "deploy v3 --retain: [v3 v2 v1]")?;
        round(4, false, "deploy v4: [v4 v3]")?;
        // Same count, kernel, kargs and commit version (none) position by
        // position: ostree swaps only the subbootversion.
        round(5, false, "deploy v5: [v5 v4]")?;
        round(6, true, "deploy v6 --retain: [v6 v5 v4]")?;
        sys.undeploy(2)?;
        history.push(("undeploy 2: [v6 v5]", sys.boot_version()?));
        sys.commit_version(7)?;
        sys.deploy(true)?;
        history.push(("deploy v7 --retain: [v7 v6 v5]", sys.boot_version()?));
        assert!(
            sys.dir.join(stale.trim_start_matches('/')).symlink_metadata().is_err(),
            "ostree={stale} should be stale after the rounds: {history:?}"
        );
        Ok(())
    });
    eprintln!("[tiny-stale] (bootversion, subbootversion) per round: {history:?}; stale ostree={stale}");
    let bootversions: Vec<u32> = history.iter().map(|(_, (b, _))| *b).collect();
    assert!(bootversions.windows(2).any(|w| w[0] != w[1]), "bootversion never flipped: {history:?}");
    assert!(
        history.windows(2).any(|w| w[0].1.0 == w[1].1.0 && w[0].1.1 != w[1].1.1),
        "no subbootversion-only swap: {history:?}"
    );
    assert_eq!(s.entries.len(), 3, "{:?}", s.entries);

    let b = boot(&s, &with_args(&s.entries[0].options, "LABEL=testroot", Some(&stale), ""));
    let r = &b.report;
    assert_field(r, "version", "7");
    assert_contains(r, "rootstock_state", "reason=fallback");
    assert_contains(r, "rootstock_state", &format!("selected=testos/{}", ids[0]));
    assert_contains(r, "rootstock_state", &format!("skipped=ostree={stale}"));
    assert_contains(r, "cmdline", &format!("ostree={stale}"));
    assert_field(r, "usr_ro", "yes");
}

#[test]
fn tiny_deployment_without_init_falls_back_to_the_next() {
    if !can_run() {
        return;
    }
    let (s, ids) = scenario("tiny-noinit", 2, &DiskSpec::default(), |sys| sys.remove_init(0));
    let b = boot(&s, &s.cmdline(0));
    let r = &b.report;
    assert_field(r, "version", "1");
    let st = state(r);
    assert!(st.contains("reason=fallback"), "{st}");
    assert!(st.contains(&format!("selected=testos/{}", ids[1])), "{st}");
    assert!(st.contains(&format!("skipped=testos/{}", ids[0])) && st.contains("no executable init"), "{st}");
    assert_field(r, "usr_ro", "yes");
    assert_field(r, "var_mount", "initramfs");
}

/// `ostree=` naming no deployment: rootstock boots the default instead.
fn garbage_ostree_falls_back_to_default(garbage: &str) {
    let (s, ids) = two();
    let b = boot(s, &with_args(&s.entries[0].options, "LABEL=testroot", Some(garbage), ""));
    let r = &b.report;
    assert_field(r, "version", "2");
    assert_contains(r, "rootstock_state", "reason=fallback");
    assert_contains(r, "rootstock_state", &format!("selected=testos/{}", ids[0]));
    assert_contains(r, "rootstock_state", &format!("skipped=ostree={garbage}"));
    assert_contains(r, "cmdline", &format!("ostree={garbage}"));
}

#[test]
fn tiny_ostree_escaping_the_boot_dir_falls_back_to_default() {
    if !can_run() {
        return;
    }
    garbage_ostree_falls_back_to_default("/ostree/boot.1/../../etc");
}

#[test]
fn tiny_ostree_naming_nothing_falls_back_to_default() {
    if !can_run() {
        return;
    }
    garbage_ostree_falls_back_to_default("/x");
}

/// A boot of `initrd` asking for `root=LABEL=nope` (2 s timeout) and the
/// failure action `on_failure`, with a disk that is there but is not that
/// root.
fn boot_without_root(name: &str, initrd: &Path, on_failure: &str) -> QemuBoot {
    let kernel = debian_kernel().unwrap();
    let work = cache_dir().join("work").join(name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let disk = work.join("other.raw");
    run(Command::new("mkfs.ext4").args(["-q", "-F", "-L", "testroot", "-U", FS_UUID]).arg(&disk).arg("16M"))
        .unwrap();
    let append = format!(
        "{CONSOLE_ARGS} root=LABEL=nope rw rootstock.root-timeout=2 rootstock.on-failure={on_failure}"
    );
    let mut q = QemuBoot::new(&kernel.vmlinuz(), Some(initrd), &append, &disk, &work.join("boot-1.log"));
    q.timeout = Duration::from_secs(90);
    q
}

#[test]
fn tiny_missing_root_device_shows_failure_and_powers_off() {
    if !can_run() {
        return;
    }
    let initrd = rootstock_initramfs(&debian_kernel().unwrap(), SET).unwrap();
    let c = run_qemu(&boot_without_root("tiny-noroot", &initrd, "poweroff")).unwrap();
    let log = c.log.display();
    assert!(!c.timed_out, "QEMU should power off by itself; console:\n{}", c.tail(40));
    assert!(c.elapsed < Duration::from_secs(45), "took {:?}; console {log}", c.elapsed);
    assert!(c.status.is_some_and(|s| s.success()), "{:?}; console {log}", c.status);
    assert!(c.report().is_none(), "no report expected; console {log}");
    assert!(c.find("Kernel panic").is_none(), "console:\n{}", c.tail(40));
    for want in [
        "rootstock: boot failed",
        "step: find the root device",
        "root=LABEL=nope did not appear within 2 s",
        "block devices seen:",
        &format!("/dev/vda TYPE=ext4 UUID={FS_UUID} LABEL=testroot"),
        "modules loaded:",
        "then: powering off",
    ] {
        assert!(c.find(want).is_some(), "console should show {want:?}:\n{}", c.tail(40));
    }
    let modules = c.find("modules loaded:").unwrap().text.clone();
    assert!(modules.contains("virtio_blk"), "{modules}");
}

/// `rootstock.on-failure=shell` with a shell in the initramfs (Debian's
/// static busybox as /bin/sh, `mkinitramfs --extra`): after the failure
/// screen the console is an interactive shell with job control that runs
/// what is typed; leaving it reboots (QEMU, run with -no-reboot, exits).
#[test]
fn tiny_failure_opens_the_emergency_shell() {
    if !can_run() {
        return;
    }
    let kernel = debian_kernel().unwrap();
    let initrd = rootstock_initramfs_with_extras(&kernel, SET, &["/bin/busybox:bin/sh"]).unwrap();
    let mut q = boot_without_root("tiny-shell", &initrd, "shell");
    q.input = vec![("starting an emergency shell".into(), "echo shell-$((6 * 7)) in $0; exit 3\n".into())];
    let c = run_qemu(&q).unwrap();
    assert!(!c.timed_out, "QEMU should reboot (exit) after the shell; console:\n{}", c.tail(40));
    assert!(c.find("Kernel panic").is_none(), "console:\n{}", c.tail(40));
    for want in [
        "rootstock: boot failed",
        "root=LABEL=nope did not appear within 2 s",
        "then: starting an emergency shell (/bin/sh); exit it to reboot",
        // What the shell printed (the typed line echoes `$((6 * 7))` unexpanded).
        "shell-42 in -sh",
        "emergency shell ended (exit status: 3): rebooting",
    ] {
        assert!(c.find(want).is_some(), "console should show {want:?}:\n{}", c.tail(40));
    }
    // The shell runs on the console's terminal (ttyS0) as its controlling
    // terminal, not on /dev/console: job control works.
    assert!(c.find("job control turned off").is_none(), "console:\n{}", c.tail(40));
}
