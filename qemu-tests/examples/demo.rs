//! `make demo`: build a sample OSTree system (two deployments of the busybox
//! test OS, committed and deployed with the real ostree CLI), rootstock's
//! initramfs for the Debian kernel, and boot it under QEMU; print the console
//! (the kernel, rootstock as PID 1, the booted system's report) and the timings.

use rootstock_qemu_tests::{RootstockTimings, Scenario, TestOs, rootstock_initramfs};

fn main() {
    if let Err(e) = demo() {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

fn demo() -> rootstock_qemu_tests::Result<()> {
    let s = Scenario::new("demo", &TestOs { deployments: 2, ..Default::default() })?;
    let initrd = rootstock_initramfs(&s.kernel, "qemu")?;
    let append = format!("{} rootstock.tries=3", s.cmdline(0));
    println!(
        "booting: qemu -kernel {} -initrd {} -append {append:?}",
        s.kernel.vmlinuz().display(),
        initrd.display()
    );
    let b = s.boot(Some(&initrd), &append)?;
    for l in &b.console.lines {
        println!("{}", l.text);
    }
    let t = RootstockTimings::from_console(&b.console);
    println!(
        "\nbooted deployment version {} ({}) — Run /init → switch root {:.2} s, → its init's report {:.2} s; console log {}",
        b.report.get("version").unwrap_or("?"),
        b.report.get("rootstock_state").unwrap_or("no state"),
        t.initramfs_phase().unwrap_or(f64::NAN),
        t.run_init_to_report().unwrap_or(f64::NAN),
        b.console.log.display()
    );
    Ok(())
}
