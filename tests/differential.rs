//! Differential tests: Debian 12's `ostree-prepare-root` (ostree-boot
//! 2022.7, on the host) against rootstock's `prepare-root`, over the same
//! sysroots made by the real `ostree` CLI (tests/common/differential.rs).
//! Prints the table of differences; fails on any difference that is not
//! listed as deliberate (tests/differential.md). Debian trixie's ostree
//! 2025.2 half: qemu-tests/tests/differential_trixie.rs.
//!
//! `ROOTSTOCK_DIFF_ONLY=SCENARIO` runs one row.

mod common;
#[path = "common/differential.rs"]
mod differential;

use std::path::Path;

#[test]
fn against_debian_12_ostree_prepare_root() {
    if !common::have_root() {
        return;
    }
    let Some(ostree) = differential::Ostree::installed(Path::new("/")) else {
        assert!(
            std::env::var_os("ROOTSTOCK_REQUIRE_ROOT_TESTS").is_none(),
            "/usr/lib/ostree/ostree-prepare-root is missing: apt-get install ostree-boot"
        );
        eprintln!("skipping: no ostree-prepare-root (apt-get install ostree-boot)");
        return;
    };
    let only = std::env::var("ROOTSTOCK_DIFF_ONLY").ok();
    let m = differential::run(&ostree, &common::boot_binary(), only.as_deref());
    println!("{}", m.render());
    assert_eq!(m.unlisted(), 0, "differences not listed as deliberate (UNLISTED in the table above)");
}

/// Every deliberate difference has its reason in tests/differential.md.
#[test]
fn deliberate_differences_are_documented() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential.md")).unwrap();
    for r in differential::RULES {
        assert!(doc.contains(&format!("`{}`", r.id)), "tests/differential.md does not document `{}`", r.id);
    }
}
