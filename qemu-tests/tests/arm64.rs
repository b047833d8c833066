//! arm64: the same scenarios on `qemu-system-aarch64 -M virt` (Cortex-A57,
//! software emulation), with Debian's arm64 kernel, a busybox-static:arm64
//! test OS deployed by the real `ostree` CLI, and rootstock's initramfs made
//! on this (x86_64) host by `rootstock mkinitramfs` from the arm64 modules,
//! with the aarch64 boot program as `/init`. Every report asserts
//! `uname -m` = aarch64 and the layout the x86_64 scenarios check.

use rootstock_qemu_tests::{
    Arch, Booted, Fixture, HOSTONLY_INIT, OwnKernel, Report, Scenario, Sysroot, TestOs, UefiScenario,
    add_hostonly_tools, assert_field, assert_laid_out, can_run_on, can_run_uefi_on, debian_kernel_for,
    older_kernel_for, rootstock_initramfs, take_hostonly_image,
};

const ARCH: Arch = Arch::Aarch64;
const SET: &str = "qemu";

/// Whether the arm64 scenarios can run here ([`can_run_on`]).
fn can_run_arm64() -> bool {
    can_run_on(ARCH)
}

fn os(deployments: usize) -> TestOs {
    TestOs { deployments, arch: ARCH, ..Default::default() }
}

/// An arm64 scenario of `os`, changed by `prepare`; returns it with the
/// deployment ids.
fn scenario(
    name: &str,
    os: &TestOs,
    prepare: impl FnOnce(&mut Sysroot) -> rootstock_qemu_tests::Result<()>,
) -> (Scenario, Vec<String>) {
    let mut ids = Vec::new();
    let s = Scenario::custom(
        name,
        os,
        |sysroot| {
            prepare(sysroot)?;
            ids = sysroot.deployment_ids()?;
            Ok(())
        },
        &Default::default(),
    )
    .unwrap();
    assert_eq!(s.kernel.arch, ARCH);
    (s, ids)
}

/// Boot through rootstock's arm64 initramfs ([`Scenario::boot_rootstock`])
/// and check that it was an aarch64 machine with Debian's arm64 kernel.
fn boot(s: &Scenario, append: &str) -> Booted {
    let b = s.boot_rootstock(SET, append).unwrap();
    assert_field(&b.report, "machine", "aarch64");
    assert_field(&b.report, "kernel", &s.kernel.version);
    b
}

fn state(r: &Report) -> &str {
    r.get("rootstock_state").unwrap_or_default()
}

fn assert_state(r: &Report, wants: &[&str]) {
    let st = state(r);
    for want in wants {
        assert!(st.contains(want), "rootstock_state should contain {want:?}: {st}\n{r}");
    }
}

/// The shared fixture: two deployments, booted once into the default
/// (which writes its marker into the shared `/var`); each scenario boots it
/// from there (`snapshot`). With the deployment ids and that first boot.
struct Two {
    s: Scenario,
    ids: Vec<String>,
    first: Booted,
}

fn two() -> &'static Two {
    static TWO: Fixture<Two> = Fixture::new();
    TWO.get(|| {
        let (mut s, ids) = scenario("arm64-two", &os(2), |_| Ok(()));
        let first = boot(&s, &s.cmdline(0));
        s.snapshot = true;
        Two { s, ids, first }
    })
}

#[test]
fn arm64_boots_the_default_deployment() {
    if !can_run_arm64() {
        return;
    }
    let f = two();
    let r = &f.first.report;
    assert_laid_out(r, "2");
    assert!(r.get("cmdline").unwrap_or_default().contains("console=ttyAMA0"), "{r}");
    assert_state(r, &["reason=default", "index=0", &format!("selected=testos/{}", f.ids[0])]);
}

/// `rootstock.deployment=CHOICE` boots the rollback, which sees the
/// default's `/var` (shared) but its own `/etc`.
fn boots_the_rollback_by(choice: &str) {
    let f = two();
    let r = boot(&f.s, &format!("{} rootstock.deployment={choice}", f.s.cmdline(0))).report;
    assert_laid_out(&r, "1");
    assert_state(&r, &["index=1", &format!("selected=testos/{}", f.ids[1])]);
    assert_field(&r, "var_marker", "written-by-2");
    assert_field(&r, "etc_marker", "none");
}

#[test]
fn arm64_boots_the_rollback_by_name_sharing_var() {
    if !can_run_arm64() {
        return;
    }
    boots_the_rollback_by("rollback");
}

#[test]
fn arm64_boots_the_rollback_by_index_sharing_var() {
    if !can_run_arm64() {
        return;
    }
    boots_the_rollback_by("1");
}

/// A default deployment without an executable init: rootstock skips it and
/// boots the next one, and says why in its state.
#[test]
fn arm64_falls_back_from_a_deployment_without_init() {
    if !can_run_arm64() {
        return;
    }
    let (s, ids) = scenario("arm64-noinit", &os(2), |sys| sys.remove_init(0));
    let r = boot(&s, &s.cmdline(0)).report;
    assert_laid_out(&r, "1");
    assert_state(
        &r,
        &["reason=fallback", &format!("skipped=testos/{}", ids[0]), "no executable init", "index=1"],
    );
}

/// A fallback built for another kernel on arm64: rootstock would kexec into
/// its own kernel, but Debian 12's arm64 kernel has no `kexec_file_load`
/// (CONFIG_KEXEC_FILE is off), so the call fails with ENOSYS, the console
/// says so, and the fallback boots on the running kernel.
#[test]
fn arm64_fallback_for_another_kernel_boots_on_the_running_one_without_kexec_file_load() {
    if !can_run_arm64() {
        return;
    }
    let old = older_kernel_for(ARCH).unwrap();
    let os = TestOs {
        own_kernels: vec![OwnKernel { deployment: 1, kernel: old.clone(), initramfs: None }],
        ..os(2)
    };
    let (s, ids) = scenario("arm64-kexec", &os, |sys| sys.remove_init(0));
    assert_ne!(old.version, s.kernel.version);
    assert!(s.entries[1].linux.contains(&old.version), "{:?}", s.entries[1]);
    let b = boot(&s, &s.cmdline(0));
    let refused = b.console.find("kexec_file_load").map(|l| l.text.clone()).unwrap_or_default();
    assert!(
        refused.contains(&old.version)
            && refused.contains("ENOSYS")
            && refused.contains("no kexec_file_load"),
        "no ENOSYS line naming the fallback's kernel: {refused:?}; console {}",
        b.console.log.display()
    );
    assert_eq!(b.console.lines.iter().filter(|l| l.text.contains("Linux version")).count(), 1, "one kernel");
    let r = &b.report;
    assert_laid_out(r, "1");
    assert_state(r, &["reason=fallback", &format!("skipped=testos/{}", ids[0]), "index=1"]);
}

/// Boot counting: a default that never blesses is booted `tries` times,
/// then the rollback boots as a fallback.
#[test]
fn arm64_falls_back_after_unblessed_counted_boots() {
    if !can_run_arm64() {
        return;
    }
    let (s, ids) = scenario("arm64-counting", &os(2), |_| Ok(()));
    let append = format!("{} rootstock.tries=2", s.cmdline(0));
    for (left, done) in [(1, 1), (0, 2)] {
        let r = boot(&s, &append).report;
        assert_laid_out(&r, "2");
        assert_state(&r, &["reason=default"]);
        let want = if left > 0 {
            format!("indeterminate left={left} done={done}")
        } else {
            format!("bad done={done}")
        };
        assert_field(&r, "counting", &want);
    }
    let r = boot(&s, &append).report;
    assert_laid_out(&r, "1");
    assert_state(
        &r,
        &["reason=fallback", &format!("skipped=testos/{}", ids[0]), "marked bad by boot counting"],
    );
}

/// The arm64 host tool on an arm64 machine: `rootstock mkinitramfs --host`
/// run inside the VM (booted by the generic image) picks the drivers on the
/// way to its root from sysfs and the arm64 modules; the image it made boots
/// the same disk.
#[test]
fn arm64_host_only_image_made_in_the_vm_boots_it() {
    if !can_run_arm64() {
        return;
    }
    let kernel = debian_kernel_for(ARCH).unwrap();
    let s = Scenario::custom(
        "arm64-hostonly",
        &os(2),
        |sys| add_hostonly_tools(sys, &kernel),
        &Default::default(),
    )
    .unwrap();
    let generic = rootstock_initramfs(&s.kernel, "generic").unwrap();
    let b = s.boot(Some(&generic), &format!("{} init={HOSTONLY_INIT}", s.cmdline(0))).unwrap();
    assert_field(&b.report, "machine", "aarch64");
    let image = s.work.join("hostonly.img");
    take_hostonly_image(&b, &s.image, 0, &image).unwrap();
    let picked: Vec<String> = b
        .console
        .texts()
        .skip_while(|t| !t.contains("testos-hostonly: rootstock mkinitramfs --host"))
        .take_while(|t| !t.contains("testos-hostonly: exit status"))
        .map(str::to_string)
        .collect();
    eprintln!(
        "[arm64-hostonly] {} bytes; mkinitramfs --host said:\n{}",
        image.metadata().unwrap().len(),
        picked.join("\n")
    );
    let said = picked.join("\n");
    for m in ["virtio_blk", "ext4", "(aarch64)"] {
        assert!(said.contains(m), "mkinitramfs --host in the VM should name {m}:\n{said}");
    }
    let b = s.boot(Some(&image), &s.cmdline(0)).unwrap();
    assert!(b.console.find("rootstock: switching root").is_some(), "console {}", b.console.log.display());
    assert_laid_out(&b.report, "2");
    assert_field(&b.report, "machine", "aarch64");
    let generic_bytes = generic.metadata().unwrap().len();
    let host_bytes = image.metadata().unwrap().len();
    assert!(host_bytes < generic_bytes, "host-only {host_bytes} bytes, generic {generic_bytes}");
}

/// The physical-machine path on arm64: AAVMF → systemd-boot (arm64) from
/// the ESP, reading the entries ostree wrote → the kernel and rootstock's
/// initramfs from the ESP → the default deployment.
#[test]
fn arm64_uefi_systemd_boot_boots_the_default_deployment() {
    if !can_run_arm64() || !can_run_uefi_on(ARCH) {
        return;
    }
    let s = UefiScenario::new("arm64-uefi", &os(2)).unwrap();
    let b = s.boot().unwrap();
    let r = &b.report;
    assert_laid_out(r, "2");
    assert_field(r, "machine", "aarch64");
    assert_field(r, "kernel", &s.scenario.kernel.version);
    let cmdline = r.get("cmdline").unwrap_or_default();
    let ostree = s.disk.entries[0].entry.ostree_arg().unwrap();
    assert!(cmdline.contains(&format!("ostree={ostree}")) && cmdline.contains("console=ttyAMA0"), "{r}");
    assert_state(r, &["reason=default", "index=0"]);
    assert!(b.console.find("rootstock: switching root").is_some(), "console {}", b.console.log.display());
    // No -kernel: AAVMF started the bootloader before the kernel's banner.
    let fw = b.console.find("BdsDxe: starting").expect("AAVMF's BdsDxe line on the console");
    let linux = b.console.find("Linux version").expect("the kernel's banner");
    assert!(fw.at <= linux.at, "firmware line after the kernel's banner");
}

/// The generic set on the virt board's other virtio transport: the disk on
/// a virtio-mmio slot (`-device virtio-blk-device`, no PCI), found by the
/// modalias the platform device announces.
#[test]
fn arm64_generic_set_boots_from_a_virtio_mmio_disk() {
    if !can_run_arm64() {
        return;
    }
    let s = &two().s;
    let initrd = rootstock_initramfs(&s.kernel, "generic").unwrap();
    let mut q = s.qemu(Some(&initrd), &format!("{} rootstock.debug loglevel=8", s.cmdline(0)));
    // Replace the harness's PCI drive with the same image on virtio-mmio.
    q.disks.clear();
    q.extra_args.extend([
        "-drive".to_string(),
        format!("file={},format=raw,if=none,id=root,snapshot=on", s.image.display()),
        "-device".to_string(),
        "virtio-blk-device,drive=root".to_string(),
    ]);
    let b = s.run(&q).unwrap();
    assert!(b.console.find("rootstock: switching root").is_some(), "console {}", b.console.log.display());
    let r = &b.report;
    assert_laid_out(r, "2");
    assert_field(r, "machine", "aarch64");
    // rootstock's debug log: "N ms: loaded virtio_mmio for ..." (the disk
    // is behind it; virtio_pci is not needed on the way).
    assert!(
        b.console.lines.iter().any(|l| l.text.contains(" ms: loaded virtio_mmio ")),
        "virtio_mmio not loaded; console {}",
        b.console.log.display()
    );
}
