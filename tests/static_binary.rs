//! The release binary runs as PID 1 in an initramfs with no libraries: it
//! must have no ELF interpreter and need no shared object.

use goblin::elf::Elf;

#[test]
fn release_binary_is_static() {
    let path = std::env::var("ROOTSTOCK_STATIC_BIN")
        .expect("ROOTSTOCK_STATIC_BIN is not set: run the tests with `make check`, which builds it");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let elf = Elf::parse(&bytes).expect("an ELF file");
    assert_eq!(elf.interpreter, None, "{path} has a PT_INTERP");
    assert!(elf.libraries.is_empty(), "{path} needs {:?}", elf.libraries);
    assert!(elf.header.e_machine == goblin::elf::header::EM_X86_64);
    println!("{path}: {} bytes, static", bytes.len());
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
