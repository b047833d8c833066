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
