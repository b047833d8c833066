//! rootstock's Debian package in a Debian trixie tree (a chroot), as a user
//! meets it: the package installed, then a kernel package. Debian runs
//! `/etc/kernel/postinst.d/rootstock`, which makes rootstock's initramfs
//! as `/boot/initrd.img-KVER`; that image boots the busybox OSTree test OS
//! under QEMU; removing the kernel package removes it.
//!
//! Needs the package (`make deb`: `make qemu-test` builds it) and the
//! trixie tree the trixie scenarios debootstrap.

use rootstock_qemu_tests::packaged::{self, BOOT_COUNTING_TRIES, in_chroot};
use rootstock_qemu_tests::{
    Arch, CONSOLE_ARGS, Fixture, Kernel, Report, Scenario, TestOs, can_run, can_run_uefi, run, run_qemu,
    tmpfs_dir,
};
use std::path::PathBuf;
use std::process::Command;

/// A trixie tree with rootstock's package, then trixie's kernel package
/// installed (by dpkg, in a chroot); kept pristine: each test copies it.
struct Installed {
    tree: PathBuf,
    kernel: Kernel,
    /// What dpkg said installing the kernel (rootstock's hook ran).
    dpkg: String,
}

fn installed() -> &'static Installed {
    static FIXTURE: Fixture<Installed> = Fixture::new();
    FIXTURE.get(|| {
        let kernel = rootstock_qemu_tests::trixie_kernel_for(Arch::X86_64).unwrap();
        let tree = tmpfs_dir().join("rootstock-debian-package-installed");
        let dpkg = packaged::install_package_and_kernel(&tree, &kernel).unwrap();
        Installed { tree, kernel, dpkg }
    })
}

#[test]
fn installing_a_kernel_makes_rootstocks_initramfs_which_boots_and_goes_with_the_kernel() {
    if !can_run() {
        return;
    }
    let Installed { tree: installed, kernel, dpkg: out } = installed();
    let kver = kernel.version.clone();
    let tree = tmpfs_dir().join("rootstock-debian-package");
    let _ = Command::new("rm").arg("-rf").arg(&tree).status();
    run(Command::new("cp").arg("-a").arg(installed).arg(&tree)).unwrap();
    assert!(tree.join("etc/kernel/postinst.d/rootstock").is_file(), "{out}");
    let initrd = tree.join(format!("boot/initrd.img-{kver}"));
    assert!(initrd.is_file(), "no {}: the hook said:\n{out}", initrd.display());
    assert!(out.contains(&format!("kernel {kver}: /boot/initrd.img-{kver} written")), "{out}");

    // It boots the busybox OSTree test OS (built for Debian 12's kernel:
    // rootstock.kexec=never keeps the 6.12 kernel).
    let s = Scenario::new("debian-package", &TestOs { deployments: 2, ..Default::default() }).unwrap();
    let append = format!("{CONSOLE_ARGS} {} rootstock.kexec=never", s.entries[0].options);
    let image = std::fs::read(&initrd).unwrap();
    let boot_initrd = s.work.join("initrd.img");
    std::fs::write(&boot_initrd, &image).unwrap();
    let mut q = s.qemu(Some(&boot_initrd), &append);
    q.kernel = tree.join(format!("boot/vmlinuz-{kver}"));
    let b = s.run(&q).unwrap();
    assert_eq!(b.report.get("version"), Some("2"), "{}", b.report);
    assert!(b.console.find("rootstock: switching root").is_some(), "{}", b.console.tail(30));
    assert_eq!(b.report.get("kernel"), Some(kver.as_str()), "{}", b.report);

    // Removed with the kernel.
    let out = in_chroot(&tree, &[], &format!("dpkg --force-depends -r linux-image-{kver}")).unwrap();
    assert!(!initrd.exists(), "{} stayed: {out}", initrd.display());
    let _ = Command::new("rm").arg("-rf").arg(&tree).status();
    eprintln!(
        "[debian-package] {} bytes made by the hook for {kver}, booted, removed with the kernel",
        image.len()
    );
}

/// `key=` of the report's `rootstock_state` (the state file's lines,
/// joined by `;`).
fn state<'a>(r: &'a Report, key: &str) -> Option<&'a str> {
    r.get("rootstock_state")?.split(';').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// An OSTree image built from packages, as an image build makes one: the
/// tree above, its kernel moved to `/usr/lib/modules/KVER/vmlinuz` and
/// rootstock's hook run again (which writes `initramfs.img` beside it),
/// `ostree commit`, `ostree admin deploy` (Debian's ostree 2026.4, with
/// `sysroot.boot-counting-tries=2`: entries `ostree-N+2.conf`). OVMF and
/// systemd-boot boot it from those entries on the ESP: no `-kernel`, no
/// `-initrd`. Version 2's init dies at once: systemd-boot tries it twice,
/// rootstock counting nothing of its own (`rootstock.tries=3` is on the
/// command line), then boots version 1 by itself, whose good boot blesses
/// its entry on the ESP (`rootstock bless`: no systemd-bless-boot in the
/// image), and whose `rootstock status` shows version 2 bad by the boot
/// loader's counter.
#[test]
fn an_ostree_image_built_from_packages_boots_from_ostrees_entries_and_systemd_boot_counts_it() {
    if !can_run() || !can_run_uefi() {
        return;
    }
    let Installed { tree, kernel, .. } = installed();
    let kver = &kernel.version;
    let t = std::time::Instant::now();
    let (s, hook) = packaged::ostree_image("packaged-image", tree, kernel).unwrap();
    let built = t.elapsed().as_secs_f64();
    assert!(hook.contains(&format!("/usr/lib/modules/{kver}/initramfs.img written")), "{hook}");
    // ostree's names for systemd-boot's counting, and the hook's image in each entry.
    let tries = BOOT_COUNTING_TRIES;
    assert_eq!(
        s.disk.esp_entry_names().unwrap(),
        [format!("ostree-1+{tries}-0.conf"), format!("ostree-2+{tries}.conf")]
    );
    for e in &s.disk.entries {
        let initrd = e.entry.initrd.as_deref().unwrap_or_else(|| panic!("no initrd in {}", e.file));
        let on_esp = std::fs::read(s.disk.esp_tree.join(initrd.trim_start_matches('/'))).unwrap();
        assert_eq!(on_esp, std::fs::read(&s.initramfs).unwrap(), "{}: not the hook's image", e.file);
    }
    let name = &s.scenario.name;

    // Version 2, the default, tried until systemd-boot's counter runs out.
    let mut broken = Vec::new();
    for done in 1..=tries {
        let t = std::time::Instant::now();
        let c = run_qemu(&s.qemu().unwrap()).unwrap();
        broken.push(t.elapsed().as_secs_f64());
        assert!(c.find("BdsDxe: starting").is_some(), "not booted by the firmware:\n{}", c.tail(20));
        assert!(c.find("TESTOS-BROKEN-INIT version 2").is_some(), "{}", c.tail(30));
        let counted = c.find("is counted by the boot loader: rootstock counts nothing");
        assert!(counted.is_some(), "{}", c.tail(30));
        let left = tries - done;
        assert_eq!(
            s.disk.esp_entry_names().unwrap(),
            [format!("ostree-1+{tries}-0.conf"), format!("ostree-2+{left}-{done}.conf")],
            "after try {done}"
        );
    }

    // Then systemd-boot boots version 1's entry; it boots, and is blessed.
    let b = s.boot().unwrap();
    let r = &b.report;
    assert_eq!(r.get("version"), Some("1"), "{r}");
    assert_eq!(r.get("kernel"), Some(kver.as_str()), "{r}");
    assert_eq!((state(r, "reason"), state(r, "index")), (Some("default"), Some("1")), "{r}");
    let counted = format!("/loader/entries/ostree-1+{}-1.conf", tries - 1);
    assert_eq!(state(r, "loader_entry"), Some(counted.as_str()), "{r}");
    assert_eq!(r.get("bless_result"), Some("success"), "{r}");
    let status: serde_json::Value = serde_json::from_str(r.get("rootstock_status_json").unwrap()).unwrap();
    let ds = &status["deployments"];
    assert_eq!(ds[0]["version"], "2", "{status}");
    assert_eq!(ds[0]["loader"], serde_json::json!({ "left": 0, "done": tries }), "{status}");
    assert_eq!(ds[0]["counting"]["state"], "never", "rootstock counted no try of its own: {status}");
    assert_eq!(ds[1]["booted"], true, "{status}");
    assert_eq!(
        s.disk.esp_entry_names().unwrap(),
        ["ostree-1.conf".to_string(), format!("ostree-2+0-{tries}.conf")],
        "version 1's entry blessed on the ESP"
    );
    eprintln!(
        "[{name}] image built from packages in {built:.1} s; version 2 tried {tries}× by systemd-boot \
         ({}), then version 1 booted and blessed ({:.1} s)",
        broken.iter().map(|t| format!("{t:.1} s")).collect::<Vec<_>>().join(", "),
        b.timings.qemu_to_report.unwrap_or_default()
    );
}
