//! The physical-machine path: UEFI firmware (Debian's OVMF) → systemd-boot
//! from the disk's ESP, reading the BLS entries that `ostree admin deploy`
//! wrote → the kernel and rootstock's initramfs from the ESP (no QEMU
//! `-kernel`) → rootstock as PID 1 → the test OS.

use rootstock_qemu_tests::{
    Booted, Fixture, Report, TestOs, UefiScenario, assert_field, can_run, can_run_uefi,
};

/// The value of `key` in the report's `rootstock_state` (its lines are
/// joined by spaces on the console).
fn state<'a>(r: &'a Report, key: &str) -> Option<&'a str> {
    r.get("rootstock_state")?.split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The shared fixture: the UEFI disk, checked, and booted once with
/// systemd-boot's default (which writes its marker into the shared `/var`);
/// with that boot. The rollback scenario boots it again from there.
struct Booted1 {
    s: UefiScenario,
    first: Booted,
}

fn booted_once() -> &'static Booted1 {
    static FIXTURE: Fixture<Booted1> = Fixture::new();
    FIXTURE.get(|| {
        let s =
            UefiScenario::new("uefi-systemd-boot", &TestOs { deployments: 2, ..Default::default() }).unwrap();
        let entries = &s.disk.entries;
        assert_eq!(entries.len(), 2, "{entries:?}");
        // The entries carry rootstock's initramfs, as ostree copied it to /boot.
        for e in entries {
            let initrd = e.entry.initrd.as_deref().unwrap_or_else(|| panic!("no initrd in {}", e.file));
            let on_esp = s.disk.esp_tree.join(initrd.trim_start_matches('/'));
            assert_eq!(std::fs::read(&on_esp).unwrap(), std::fs::read(&s.initramfs).unwrap(), "{}", e.file);
        }
        let first = s.boot().unwrap();
        Booted1 { s, first }
    })
}

/// systemd-boot's default: ostree's default entry (version 2), booted by
/// the firmware, not by QEMU's `-kernel`.
#[test]
fn uefi_systemd_boot_boots_rootstock_initramfs() {
    if !can_run() || !can_run_uefi() {
        return;
    }
    let Booted1 { s, first: b } = booted_once();
    let r = &b.report;
    assert_field(r, "version", "2");
    assert_field(r, "usr_ro", "yes");
    assert_field(r, "etc_rw", "yes");
    assert_field(r, "var_rw", "yes");
    assert_field(r, "sysroot_is_physical", "yes");
    assert_field(r, "kernel", &s.scenario.kernel.version);
    assert_eq!(state(r, "reason"), Some("default"), "{r}");
    assert_eq!(state(r, "index"), Some("0"), "{r}");
    // The command line is the ESP entry's options line, as systemd-boot passed it.
    let cmdline = r.get("cmdline").unwrap();
    let ostree = s.disk.entries[0].entry.ostree_arg().unwrap();
    assert!(cmdline.contains(&format!("ostree={ostree}")), "{r}");
    assert!(cmdline.contains("console=ttyS0") && cmdline.contains("root=LABEL=testroot"), "{r}");
    // No -kernel: the firmware printed its boot line before the kernel ran.
    let fw = b.console.find("BdsDxe: starting").expect("OVMF's BdsDxe line on the console");
    let linux = b.console.find("Linux version").expect("the kernel's banner");
    assert!(fw.at <= linux.at, "firmware line after the kernel's banner");
}

/// Rollback through the bootloader: loader.conf's default names the other
/// entry (what `bootctl set-default` or a menu choice would do); version 1
/// boots and sees the default's `/var`. (It changes the fixture's ESP: the
/// only scenario that boots the fixture again.)
#[test]
fn uefi_systemd_boot_default_set_to_the_rollback_boots_it() {
    if !can_run() || !can_run_uefi() {
        return;
    }
    let s = &booted_once().s;
    let entries = &s.disk.entries;
    s.disk.set_default(1).unwrap();
    let conf = s.disk.read_esp_file("loader/loader.conf").unwrap();
    assert!(conf.contains(&format!("default {}", entries[1].default_pattern())), "{conf}");
    let r = s.boot().unwrap().report;
    assert_field(&r, "version", "1");
    assert_field(&r, "usr_ro", "yes");
    assert_field(&r, "var_marker", "written-by-2");
    assert_eq!(state(&r, "reason"), Some("default"), "{r}");
    assert_eq!(state(&r, "index"), Some("1"), "{r}");
    let ostree = entries[1].entry.ostree_arg().unwrap();
    assert!(r.get("cmdline").unwrap().contains(&format!("ostree={ostree}")), "{r}");
}
