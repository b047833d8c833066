//! Differential tests, Debian trixie's half: ostree 2025.2's
//! `ostree-prepare-root`, run inside the debootstrapped trixie tree that
//! `trixie_systemd` boots (cached: no extra debootstrap), against rootstock's
//! `prepare-root` over the same sysroots (tests/common/differential.rs at the
//! top of the repository, shared with tests/differential.rs). Prints the
//! table; fails on any difference not listed as deliberate.
//!
//! `qemu-tests/run --exact differential_against_trixie_ostree_prepare_root`;
//! `ROOTSTOCK_DIFF_ONLY=SCENARIO` runs one row.

#[path = "../../tests/common/differential.rs"]
mod differential;

use rootstock_qemu_tests::trixie::trixie_rootfs;

#[test]
fn differential_against_trixie_ostree_prepare_root() {
    if !is_root() {
        assert!(
            std::env::var_os("ROOTSTOCK_REQUIRE_QEMU_TESTS").is_none(),
            "ROOTSTOCK_REQUIRE_QEMU_TESTS is set but the tests do not run as root"
        );
        eprintln!("skipping: needs root for mount namespaces");
        return;
    }
    let (rootfs, took) = trixie_rootfs().expect("the debootstrapped trixie tree");
    if let Some(t) = took {
        eprintln!("[differential] debootstrap took {t:.1} s");
    }
    let ostree = differential::Ostree::installed(&rootfs).expect("ostree-boot in the trixie tree");
    let only = std::env::var("ROOTSTOCK_DIFF_ONLY").ok();
    let m = differential::run(
        &ostree,
        &rootstock_qemu_tests::boot_binary().expect("the static boot program (make static)"),
        only.as_deref(),
    );
    println!("{}", m.render());
    assert_eq!(m.unlisted(), 0, "differences not listed as deliberate (UNLISTED in the table above)");
}

/// Root, without a dependency: the effective uid in /proc/self/status.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
