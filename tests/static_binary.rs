//! Both programs run where there are no libraries: the boot program as PID 1
//! of an initramfs, the host tool inside minimal images (the QEMU test OS).
//! Each must have no ELF interpreter and need no shared object; the boot
//! program must also fit its size budget.

use goblin::elf::Elf;

/// The boot program's size budget: it goes into every initramfs.
const BOOT_BUDGET: usize = 600 * 1024;

fn check_static(var: &str) -> usize {
    let path = std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} is not set: run the tests with `make check`, which builds it"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let elf = Elf::parse(&bytes).expect("an ELF file");
    assert_eq!(elf.interpreter, None, "{path} has a PT_INTERP");
    assert!(elf.libraries.is_empty(), "{path} needs {:?}", elf.libraries);
    assert!(elf.header.e_machine == goblin::elf::header::EM_X86_64);
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
