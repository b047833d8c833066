//! Firmware for the modules of an image: the files a module names with
//! `firmware=` in its `.modinfo`, taken from the firmware directory
//! (normally `/lib/firmware`) when present, so that a driver that loads
//! its firmware while probing (a storage controller, a USB controller) finds
//! it in the initramfs.
//!
//! Each name is looked up where the kernel looks (`updates/KVER/`,
//! `updates/`, `KVER/`, then the directory itself), as the plain file or
//! compressed (`NAME.zst`, `NAME.xz`, which a kernel with
//! `CONFIG_FW_LOADER_COMPRESS` decompresses itself), and stored as found at
//! `lib/firmware/NAME[.zst|.xz]`: a distribution that compresses its
//! firmware builds its kernels to read it. A file named by a module but not
//! present is a warning naming the module and the file; the image is made
//! without it (most `firmware=` lines name optional files, or files for
//! hardware variants the machine does not have).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rootstock_core::confine::ReadError;

/// Where firmware is looked up by default.
pub const FIRMWARE_DIR: &str = "/lib/firmware";

/// The suffixes tried after the plain name, in the kernel's order.
const SUFFIXES: [&str; 3] = ["", ".zst", ".xz"];

/// A firmware file found for a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub module: String,
    /// As the module names it, e.g. `isci/isci_firmware.bin`.
    pub name: String,
    /// Where it was read.
    pub source: PathBuf,
    /// Where it goes in the image, e.g. `lib/firmware/isci/isci_firmware.bin.xz`.
    pub dest: String,
}

/// A firmware file a module names that is not there (or cannot be used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub module: String,
    pub name: String,
    /// Why, e.g. "not in /lib/firmware" or a bad name.
    pub why: String,
}

/// Is `name` a relative path without `.`, `..` or empty components and
/// without control characters? Names come from module files.
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.chars().any(char::is_control)
        && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The directories the kernel searches, in its order.
fn search_dirs(dir: &Path, kver: &str) -> [PathBuf; 4] {
    [dir.join("updates").join(kver), dir.join("updates"), dir.join(kver), dir.to_path_buf()]
}

/// Find the firmware files of `modules` (name, its `firmware=` entries, in
/// load order) in `dir`. Each file is included once, for the first module
/// that names it.
pub fn find(modules: &[(String, Vec<String>)], dir: &Path, kver: &str) -> (Vec<Found>, Vec<Missing>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let mut seen = BTreeSet::new();
    for (module, names) in modules {
        for name in names {
            if !seen.insert(name.clone()) {
                continue;
            }
            if !safe_name(name) {
                missing.push(Missing {
                    module: module.clone(),
                    name: name.escape_debug().to_string(),
                    why: "not a relative file name".into(),
                });
                continue;
            }
            let hit = search_dirs(dir, kver).into_iter().find_map(|d| {
                SUFFIXES.iter().find_map(|suffix| {
                    let path = d.join(format!("{name}{suffix}"));
                    path.is_file().then(|| (path, format!("lib/firmware/{name}{suffix}")))
                })
            });
            match hit {
                Some((source, dest)) => {
                    found.push(Found { module: module.clone(), name: name.clone(), source, dest })
                }
                None => missing.push(Missing {
                    module: module.clone(),
                    name: name.clone(),
                    why: format!("not in {} (nor .zst, .xz)", dir.display()),
                }),
            }
        }
    }
    (found, missing)
}

/// The cap on one firmware file (the largest in linux-firmware are tens of
/// MiB).
pub const FIRMWARE_CAP: u64 = 256 << 20;

/// Read a found file (symlinks followed: linux-firmware links many names
/// to one file): `O_NONBLOCK`, a regular file, at most [`FIRMWARE_CAP`].
pub fn read(f: &Found) -> Result<Vec<u8>, ReadError> {
    rootstock_core::confine::read_file(&f.source, FIRMWARE_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootstock_core::testutil::TempDir;

    #[test]
    fn firmware_is_found_where_the_kernel_looks_compressed_or_not() {
        let t = TempDir::new();
        let d = t.path();
        for (rel, body) in [
            ("isci/isci_firmware.bin", "plain"),
            ("6.1.0-t/ql2500_fw.bin.xz", "xz for this kernel"),
            ("ql2500_fw.bin", "shadowed by the kernel's own"),
            ("updates/rtl_nic/rtl8168h-2.fw.zst", "an update"),
            ("rtl_nic/rtl8168h-2.fw", "shadowed by the update"),
        ] {
            let p = d.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::os::unix::fs::symlink("isci/isci_firmware.bin", d.join("link.bin")).unwrap();
        let modules = vec![
            ("isci".to_string(), vec!["isci/isci_firmware.bin".to_string()]),
            ("qla2xxx".into(), vec!["ql2500_fw.bin".into(), "ql2600_fw.bin".into()]),
            ("r8169".into(), vec!["rtl_nic/rtl8168h-2.fw".into(), "isci/isci_firmware.bin".into()]),
            ("evil".into(), vec!["../../etc/shadow".into(), "/etc/passwd".into(), "a\nb".into()]),
            ("linked".into(), vec!["link.bin".into()]),
        ];
        let (found, missing) = find(&modules, d, "6.1.0-t");
        let got: Vec<(&str, &str, String)> = found
            .iter()
            .map(|f| (f.module.as_str(), f.dest.as_str(), String::from_utf8(read(f).unwrap()).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                ("isci", "lib/firmware/isci/isci_firmware.bin", "plain".to_string()),
                ("qla2xxx", "lib/firmware/ql2500_fw.bin.xz", "xz for this kernel".into()),
                ("r8169", "lib/firmware/rtl_nic/rtl8168h-2.fw.zst", "an update".into()),
                ("linked", "lib/firmware/link.bin", "plain".into()),
            ]
        );
        let missing: Vec<(&str, &str, &str)> =
            missing.iter().map(|m| (m.module.as_str(), m.name.as_str(), m.why.as_str())).collect();
        let not_in = format!("not in {} (nor .zst, .xz)", d.display());
        assert_eq!(
            missing,
            [
                ("qla2xxx", "ql2600_fw.bin", not_in.as_str()),
                ("evil", "../../etc/shadow", "not a relative file name"),
                ("evil", "/etc/passwd", "not a relative file name"),
                ("evil", "a\\nb", "not a relative file name"),
            ]
        );
    }

    /// A firmware file swapped for a FIFO or a device after it was found is
    /// refused, not read (no hang, no unbounded read).
    #[test]
    fn a_found_file_that_became_a_fifo_or_a_device_is_refused() {
        let t = TempDir::new();
        let fifo = t.path().join("fw.bin");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap();
        for (source, kind) in [(fifo, "a FIFO"), (PathBuf::from("/dev/zero"), "a character device")] {
            let f = Found {
                module: "m".into(),
                name: "fw.bin".into(),
                source,
                dest: "lib/firmware/fw.bin".into(),
            };
            let e = read(&f).unwrap_err().to_string();
            assert!(e.ends_with(&format!(": not a regular file ({kind}): refused")), "{e}");
        }
    }

    /// `mkinitramfs` puts a module's firmware into the image, and names
    /// what is missing.
    #[test]
    fn an_image_carries_its_modules_firmware() {
        use crate::compress::Compression;
        use crate::mkinitramfs::{Options, build};
        use crate::modules::test_support::fake_elf;

        let t = TempDir::new();
        let kdir = t.path().join("modules/1.0-test/kernel");
        std::fs::create_dir_all(&kdir).unwrap();
        let modinfo = b"name=isci\0firmware=isci/isci_firmware.bin\0firmware=isci/other.bin\0";
        std::fs::write(kdir.join("isci.ko"), fake_elf(&[(".modinfo", modinfo)])).unwrap();
        let fw = t.path().join("firmware");
        std::fs::create_dir_all(fw.join("isci")).unwrap();
        std::fs::write(fw.join("isci/isci_firmware.bin.xz"), "compressed").unwrap();
        std::fs::write(t.path().join("init"), "#!/bin/sh\n").unwrap();
        let opts = Options {
            kver: Some("1.0-test".into()),
            modules_dir: t.path().join("modules"),
            module_set: None,
            add_modules: vec!["isci".into()],
            binary: t.path().join("init"),
            compress: Some(Compression::None),
            firmware_dir: Some(fw.clone()),
            config_root: None,
            ..Options::default()
        };
        let image = build(&opts).unwrap();
        let dests: Vec<&str> = image.firmware.iter().map(|f| f.dest.as_str()).collect();
        assert_eq!(dests, ["lib/firmware/isci/isci_firmware.bin.xz"]);
        let missing: Vec<(&str, &str)> =
            image.missing_firmware.iter().map(|m| (m.module.as_str(), m.name.as_str())).collect();
        assert_eq!(missing, [("isci", "isci/other.bin")]);
        let listing = String::from_utf8(rootstock_core::testutil::run_piped(
            std::process::Command::new("cpio").args(["-t", "--quiet"]),
            &image.bytes,
        ))
        .unwrap();
        assert!(listing.lines().any(|l| l == "lib/firmware/isci/isci_firmware.bin.xz"), "{listing}");
        // Without a firmware directory, none.
        let image = build(&Options { firmware_dir: None, ..opts }).unwrap();
        assert!(image.firmware.is_empty() && image.missing_firmware.is_empty());
    }
}
