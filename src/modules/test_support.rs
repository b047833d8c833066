//! The real Debian kernel the tests read, images of the repository's module
//! sets built from it, and fake modules.

use std::path::{Path, PathBuf};

use crate::compress::Compression;
use crate::mkinitramfs::{Image, Options, build};

/// `["a", "b"]` as owned strings.
pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `lib/modules/<kver>` of the kernel unpacked by
/// `tests/fixtures/fetch-kernel.sh` (or the QEMU harness) into
/// `<repo>/.cache/kernel/<kver>/`, or of `$ROOTSTOCK_TEST_KERNEL_DIR`
/// (a directory holding `lib/modules/<kver>`). Fails (not skips) when
/// it is missing.
pub fn modules_dir() -> (PathBuf, String) {
    if let Some(d) = std::env::var_os("ROOTSTOCK_TEST_KERNEL_DIR")
        && let Some(found) = single_kver(&PathBuf::from(d))
    {
        return found;
    }
    modules_dir_for("amd64").unwrap_or_else(|| {
        panic!(
            "no Debian kernel unpacked: run `tests/fixtures/fetch-kernel.sh {}/.cache/kernel` first \
             (or set ROOTSTOCK_TEST_KERNEL_DIR to a directory holding lib/modules/KVER)",
            env!("CARGO_MANIFEST_DIR")
        )
    })
}

/// The newest unpacked Debian 12 kernel of flavour `arch` (`amd64`, `arm64`)
/// in `<repo>/.cache/kernel` (`tests/fixtures/fetch-kernel.sh DIR ARCH`).
pub fn modules_dir_for(arch: &str) -> Option<(PathBuf, String)> {
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/kernel");
    let suffix = format!("-{arch}");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&cache)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(".complete").exists())
        // Debian 12's: the tests know its modules. (The QEMU harness keeps
        // Debian 13's 6.12, `…+deb13-…`, there too.)
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().ends_with(&suffix) && !n.to_string_lossy().contains("+deb13")
            })
        })
        .collect();
    v.sort();
    v.iter().rev().find_map(|root| single_kver(root))
}

/// `root/lib/modules/KVER` when it holds exactly one KVER.
fn single_kver(root: &std::path::Path) -> Option<(PathBuf, String)> {
    let modules = root.join("lib/modules");
    let kvers: Vec<String> = std::fs::read_dir(&modules)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    match &kvers[..] {
        [k] => Some((modules.join(k), k.clone())),
        _ => None,
    }
}

/// `<repo>/initramfs`, where the repository's module sets are.
pub fn repo_lists() -> Vec<PathBuf> {
    vec![PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("initramfs")]
}

/// Options for an image of the repository's module set `set` for the kernel
/// of `lib/modules/KVER` `(dir, kver)` (from [`modules_dir`]), with `init` as
/// /init.
pub fn set_opts((dir, kver): (PathBuf, String), set: &str, init: &Path) -> Options {
    Options {
        kver: Some(kver),
        modules_dir: dir.parent().unwrap().into(),
        module_set: Some(set.into()),
        list_dirs: repo_lists(),
        binary: init.into(),
        ..Options::default()
    }
}

/// The image of the repository's module set `set` for the Debian kernel of
/// [`modules_dir`], as `mkinitramfs` builds it (uncompressed, no firmware,
/// a dummy /init).
pub fn set_image(set: &str) -> Image {
    let init = std::env::temp_dir().join(format!("rootstock-set-image-{set}-{}", std::process::id()));
    std::fs::write(&init, b"\x7fELF dummy init\n").unwrap();
    let opts = Options {
        compress: Some(Compression::None),
        firmware_dir: None,
        config_root: None,
        ..set_opts(modules_dir(), set, &init)
    };
    let image = build(&opts).unwrap();
    let _ = std::fs::remove_file(&init);
    image
}

/// A minimal ELF64 relocatable file holding the given sections.
pub fn fake_elf(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut shstrtab = vec![0u8];
    let mut name_offsets = Vec::new();
    for (name, _) in sections.iter().chain([(".shstrtab", &[][..])].iter()) {
        name_offsets.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(name.as_bytes());
        shstrtab.push(0);
    }
    let mut body = Vec::new();
    let mut placed = Vec::new();
    for (_, data) in sections.iter().copied().chain([(".shstrtab", &shstrtab[..])]) {
        placed.push((64 + body.len() as u64, data.len() as u64));
        body.extend_from_slice(data);
    }
    while body.len() % 8 != 0 {
        body.push(0);
    }
    let shoff = 64 + body.len() as u64;
    let shnum = sections.len() as u16 + 2;
    let mut out = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
    out.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // entry
    out.extend_from_slice(&0u64.to_le_bytes()); // phoff
    out.extend_from_slice(&shoff.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 0, 0, 64, shnum, shnum - 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&body);
    out.extend_from_slice(&[0u8; 64]); // the null section
    for (i, (off, size)) in placed.iter().enumerate() {
        let ty: u32 = if i + 1 == placed.len() { 3 } else { 1 }; // SHT_STRTAB / SHT_PROGBITS
        out.extend_from_slice(&name_offsets[i].to_le_bytes());
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // flags
        out.extend_from_slice(&0u64.to_le_bytes()); // addr
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&[0u8; 24]); // link, info, addralign, entsize
    }
    out
}
