//! rootstock's Debian package in a Debian trixie tree (a chroot), as a user
//! meets it: the package installed, then a kernel package. Debian runs
//! `/etc/kernel/postinst.d/rootstock`, which makes rootstock's initramfs
//! as `/boot/initrd.img-KVER`; that image boots the busybox OSTree test OS
//! under QEMU; removing the kernel package removes it.
//!
//! Needs the package (`make deb`: `make qemu-test` builds it) and the
//! trixie tree the trixie scenarios debootstrap.

use rootstock_qemu_tests::trixie::trixie_rootfs;
use rootstock_qemu_tests::{
    Arch, CONSOLE_ARGS, Scenario, TestOs, cache_dir, can_run, repo_root, run, tmpfs_dir,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The amd64 package `make deb` wrote.
fn package() -> PathBuf {
    let dir = repo_root().join("target/debian");
    std::fs::read_dir(&dir)
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("_amd64.deb")))
        .unwrap_or_else(|| panic!("no rootstock_*_amd64.deb in {}: run `make deb`", dir.display()))
}

/// `chroot TREE sh -c SCRIPT`, with /proc, /sys and /dev of the host;
/// returns its output, panics with it on failure.
fn in_chroot(tree: &Path, script: &str) -> String {
    let full = format!(
        "set -e; for d in proc sys dev; do mount --rbind /$d \"$T/$d\"; mount --make-rslave \"$T/$d\"; done; \
         chroot \"$T\" /bin/sh -ec '{}'",
        script.replace('\'', "'\\''")
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &full])
        .env("T", tree)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "in the chroot: {script}\n{text}");
    text
}

#[test]
fn installing_a_kernel_makes_rootstocks_initramfs_which_boots_and_goes_with_the_kernel() {
    if !can_run() {
        return;
    }
    let deb = package();
    let (rootfs, _) = trixie_rootfs().unwrap();
    // The trixie kernel and linux-base (its postinst's linux-update-symlinks),
    // as packages: from the trixie lists the harness keeps.
    let debs = cache_dir().join("debs-trixie");
    std::fs::create_dir_all(&debs).unwrap();
    let kernel = rootstock_qemu_tests::trixie_kernel_for(Arch::X86_64).unwrap();
    let kver = kernel.version.clone();
    for pkg in [format!("linux-image-{kver}"), "linux-base".into()] {
        if !std::fs::read_dir(&debs)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&format!("{pkg}_")))
        {
            rootstock_qemu_tests::download_trixie(&pkg, &debs).unwrap();
        }
    }
    let tree = tmpfs_dir().join("rootstock-debian-package");
    let _ = Command::new("rm").arg("-rf").arg(&tree).status();
    run(Command::new("cp").arg("-a").arg(&rootfs).arg(&tree)).unwrap();
    run(Command::new("sh").arg("-c").arg(format!(
        "cp {}/*.deb {} '{}/tmp/'",
        debs.display(),
        deb.display(),
        tree.display()
    )))
    .unwrap();

    let out = in_chroot(&tree, "dpkg -i /tmp/rootstock_*.deb");
    assert!(tree.join("etc/kernel/postinst.d/rootstock").is_file(), "{out}");
    let out =
        in_chroot(&tree, "dpkg -i /tmp/linux-base_*.deb && dpkg --force-depends -i /tmp/linux-image-*.deb");
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
    let out = in_chroot(&tree, &format!("dpkg --force-depends -r linux-image-{kver}"));
    assert!(!initrd.exists(), "{} stayed: {out}", initrd.display());
    let _ = Command::new("rm").arg("-rf").arg(&tree).status();
    eprintln!(
        "[debian-package] {} bytes made by the hook for {kver}, booted, removed with the kernel",
        image.len()
    );
}
