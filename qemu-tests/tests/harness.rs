//! The harness's own failure paths, with a kernel that cannot find its root.

use rootstock_qemu_tests::{CONSOLE_ARGS, QemuBoot, boot, cache_dir, can_run, debian_kernel};
use std::time::Duration;

fn panicking_boot(name: &str, extra: &str) -> QemuBoot {
    let kernel = debian_kernel().unwrap();
    let work = cache_dir().join("work").join(name);
    std::fs::create_dir_all(&work).unwrap();
    let disk = work.join("empty.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    // No initramfs, no root filesystem on the disk: "VFS: Unable to mount root fs".
    let append = format!("{CONSOLE_ARGS} root=/dev/vda {extra}");
    QemuBoot::new(&kernel.vmlinuz(), None, &append, &disk, &work.join("boot.log"))
}

#[test]
fn harness_kills_qemu_at_the_timeout_and_shows_the_console() {
    if !can_run() {
        return;
    }
    let mut q = panicking_boot("harness-timeout", "panic=0");
    q.timeout = Duration::from_secs(15);
    let e = boot(&q).unwrap_err().to_string();
    assert!(e.contains("QEMU killed after 15 s (timeout)"), "{e}");
    assert!(e.contains("Kernel panic"), "{e}");
    assert!(e.contains("last 40 lines"), "{e}");
}

#[test]
fn harness_fails_a_boot_that_ends_without_a_report() {
    if !can_run() {
        return;
    }
    // panic=-1: reboot at once; -no-reboot makes QEMU exit.
    let e = boot(&panicking_boot("harness-no-report", "panic=-1")).unwrap_err().to_string();
    assert!(e.contains("without a complete report"), "{e}");
    assert!(e.contains("Kernel panic"), "{e}");
}

/// The disk variants of the tiny-initramfs scenarios, checked on the host
/// (no QEMU): GPT partitions with the given PARTUUID and name, an ext4 at
/// the partition's offset with the given UUID, an xfs made from a protofile;
/// both filesystems pass a read-only fsck.
#[test]
fn harness_makes_gpt_ext4_and_xfs_disks_without_loop_mounts() {
    use rootstock_qemu_tests::{DiskSpec, GptSpec, RootFs, TestOs, build_sysroot, run, tmpfs_dir};
    use std::process::Command;
    if !can_run() {
        return;
    }
    let kernel = debian_kernel().unwrap();
    let sysroot = build_sysroot(&kernel, &TestOs { deployments: 1, ..Default::default() }).unwrap();
    let dir = tmpfs_dir().join(format!("rootstock-disk-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let uuid = "0b5e1e55-0000-4000-8000-00000000c0de";
    let gpt = GptSpec {
        esp_mb: 8,
        partuuid: "7e57da7a-0000-4000-8000-000000000002".into(),
        partlabel: "tr".into(),
    };
    let spec =
        DiskSpec { uuid: Some(uuid.into()), gpt: Some(gpt.clone()), size_mb: 320, ..Default::default() };
    let image = dir.join("gpt.raw");
    sysroot.make_disk(&image, &spec).unwrap();
    let info = run(Command::new("sgdisk").arg("-i").arg("2").arg(&image)).unwrap();
    assert!(info.to_lowercase().contains(&format!("partition unique guid: {}", gpt.partuuid)), "{info}");
    assert!(info.contains("Partition name: 'tr'"), "{info}");
    let verify = run(Command::new("sgdisk").arg("-v").arg(&image)).unwrap();
    assert!(verify.contains("No problems found"), "{verify}");
    let offset = 9 << 20;
    let probe = run(Command::new("blkid").args(["-p", "-O", &offset.to_string()]).arg(&image)).unwrap();
    assert!(probe.contains(&format!("UUID=\"{uuid}\"")) && probe.contains("LABEL=\"testroot\""), "{probe}");
    run(Command::new("e2fsck").arg("-fn").arg(format!("{}?offset={offset}", image.display()))).unwrap();

    let image = dir.join("xfs.raw");
    let spec = DiskSpec { fs: RootFs::Xfs, uuid: Some(uuid.into()), size_mb: 320, ..Default::default() };
    sysroot.make_disk(&image, &spec).unwrap();
    let probe = run(Command::new("blkid").arg("-p").arg(&image)).unwrap();
    assert!(probe.contains("TYPE=\"xfs\"") && probe.contains(&format!("UUID=\"{uuid}\"")), "{probe}");
    run(Command::new("xfs_repair").args(["-n", "-f"]).arg(&image)).unwrap();
    let init =
        run(Command::new("xfs_db").args(["-r", "-c", "ls /ostree/deploy/testos"]).arg(&image)).unwrap();
    assert!(init.contains("deploy") && init.contains("var"), "{init}");
    std::fs::remove_dir_all(&dir).unwrap();
}
