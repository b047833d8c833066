//! Both programs run where there are no libraries: the boot program as PID 1
//! of an initramfs, the host tool inside minimal images (the QEMU test OS).
//! Each must have no ELF interpreter and need no shared object; the boot
//! program must also fit its size budget. The same for the arm64 builds
//! (`make static-arm64`), which must also run (under qemu-user here) and
//! plan exactly what the x86_64 build plans.

use goblin::elf::Elf;

/// The boot program's size budget: it goes into every initramfs.
const BOOT_BUDGET: usize = 600 * 1024;

fn check_static(var: &str) -> usize {
    check_static_for(var, goblin::elf::header::EM_X86_64)
}

fn check_static_for(var: &str, machine: u16) -> usize {
    let path = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with `make check`, which builds it"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let elf = Elf::parse(&bytes).expect("an ELF file");
    assert_eq!(elf.interpreter, None, "{path} has a PT_INTERP");
    assert!(elf.libraries.is_empty(), "{path} needs {:?}", elf.libraries);
    assert_eq!(elf.header.e_machine, machine, "{path}: another architecture");
    println!("{path}: {} bytes, static", bytes.len());
    bytes.len()
}

#[test]
fn boot_program_is_static_and_within_budget() {
    let size = check_static("ROOTSTOCK_BOOT_BIN");
    assert!(size <= BOOT_BUDGET, "the boot program is {size} bytes, over its budget of {BOOT_BUDGET}");
}

#[test]
fn host_tool_is_static() {
    check_static("ROOTSTOCK_HOST_BIN");
}

#[test]
fn the_check_rejects_a_dynamic_binary() {
    // The test binary itself is linked dynamically (a normal cargo test
    // build): the same parse must see its interpreter and libc.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let elf = Elf::parse(&me).unwrap();
    assert!(elf.interpreter.is_some());
    assert!(elf.libraries.iter().any(|l| l.starts_with("libc.so")), "{:?}", elf.libraries);
}

#[test]
fn arm64_boot_program_is_static_and_within_budget() {
    let size = check_static_for("ROOTSTOCK_ARM64_BOOT_BIN", goblin::elf::header::EM_AARCH64);
    assert!(size <= BOOT_BUDGET, "the arm64 boot program is {size} bytes, over its budget of {BOOT_BUDGET}");
}

#[test]
fn arm64_host_tool_is_static() {
    check_static_for("ROOTSTOCK_ARM64_HOST_BIN", goblin::elf::header::EM_AARCH64);
}

/// `prepare-root --dry-run` of `program` (run through `runner` when given)
/// on a fake physical root: the plan and the state it would write.
fn dry_run(runner: Option<&str>, program: &str, root: &std::path::Path) -> String {
    let cmdline = root.join("cmdline");
    std::fs::write(
        &cmdline,
        format!("root=LABEL=r rw ostree=/ostree/boot.1/os/{}/0", rootstock_core::testutil::C2),
    )
    .unwrap();
    let mut cmd = match runner {
        Some(r) => {
            let mut c = std::process::Command::new(r);
            c.arg(program);
            c
        }
        None => std::process::Command::new(program),
    };
    let out = cmd
        .args(["prepare-root", "--dry-run", "--cmdline"])
        .arg(&cmdline)
        .arg("--config-root")
        .arg(root.join("config"))
        .arg("--run-dir")
        .arg(root.join("run"))
        .arg(root.join("sysroot"))
        .output()
        .unwrap_or_else(|e| panic!("{runner:?} {program}: {e}"));
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The arm64 boot program runs (qemu-user: `qemu-aarch64-static`, from
/// Debian's qemu-user-static) and plans exactly what the x86_64 one plans.
#[test]
fn arm64_boot_program_runs_and_plans_as_the_x86_64_one() {
    let arm64 = std::env::var("ROOTSTOCK_ARM64_BOOT_BIN")
        .expect("ROOTSTOCK_ARM64_BOOT_BIN is not set: run the tests with `make check`, which builds it");
    let x86 = std::env::var("ROOTSTOCK_BOOT_BIN").expect("ROOTSTOCK_BOOT_BIN is not set: run `make check`");
    let t = rootstock_core::testutil::TempDir::new();
    for d in ["config", "run", "sysroot"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
    }
    rootstock_core::testutil::fake_physical_root(&t.path().join("sysroot"), "r", None);
    let native = dry_run(None, &x86, t.path());
    let emulated = dry_run(Some("qemu-aarch64-static"), &arm64, t.path());
    assert!(native.contains("bind the deployment"), "{native}");
    assert_eq!(emulated, native, "the arm64 build plans otherwise");
}
