//! The boot program goes into every initramfs: nothing only the host tool
//! needs (an ELF reader, compressors, JSON) may be linked into it.

use std::process::Command;

/// Crates the host tool uses that must never reach the boot program.
const HOST_ONLY: [&str; 8] =
    ["goblin", "flate2", "lzma-rs", "lzma-rust2", "ruzstd", "zstd-complete", "serde_json", "miniz_oxide"];

fn normal_dependencies(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            // x86_64's: the arm64 boot program has one exception (below).
            "--target",
            "x86_64-unknown-linux-musl",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The arm64 boot program's one exception: an inflater, for arm64's
/// `kexec_file_load`, which takes only a raw Image (rootstock-sys's
/// kernel_image.rs unwraps a gzip or EFI zboot vmlinuz).
#[test]
fn the_arm64_boot_program_links_only_an_inflater_more() {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none", "--format", "{p}"])
        .args(["--target", "aarch64-unknown-linux-musl", "-p", "rootstock-boot"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "cargo tree: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let deps: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(deps.contains(&"miniz_oxide"), "{deps:?}");
    for bad in HOST_ONLY.iter().filter(|c| **c != "miniz_oxide") {
        assert!(!deps.contains(bad), "the arm64 rootstock-boot depends on {bad}: {deps:?}");
    }
}

#[test]
fn the_boot_program_links_no_host_only_crate() {
    let deps = normal_dependencies("rootstock-boot");
    assert!(deps.iter().any(|d| d == "rootstock-core"), "{deps:?}");
    for bad in HOST_ONLY {
        assert!(!deps.iter().any(|d| d == bad), "rootstock-boot depends on {bad}: {deps:?}");
    }
}

#[test]
fn the_check_sees_the_host_tools_crates() {
    // The same query on the host tool must find them, or the test above
    // proves nothing.
    let deps = normal_dependencies("rootstock");
    for needed in ["goblin", "flate2", "serde_json"] {
        assert!(deps.iter().any(|d| d == needed), "{needed} not in {deps:?}");
    }
}
