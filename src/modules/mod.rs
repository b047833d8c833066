//! Kernel modules on the host, one file per job: what a module file says
//! about itself (`modinfo.rs`: the ELF `.modinfo` section), `.ko.xz`,
//! `.ko.zst` and `.ko.gz` files (`decompress.rs`), and the modules of one
//! kernel (`tree.rs`: `/lib/modules/KVER`, dependencies and aliases resolved
//! as modprobe does). This file reads a module file and holds the error
//! type. The index format, modalias matching and load order that PID 1 uses
//! are in `rootstock_core::modules`.
//!
//! Module names are compared normalised: `-` and `_` are the same character
//! to the kernel (`usb-storage` is `usb_storage`).

mod decompress;
mod error;
mod modinfo;
mod read;
#[cfg(test)]
pub(crate) mod test_support;
mod tree;

pub use rootstock_core::modules::{INDEX_FILE, Index, IndexEntry, IndexError, alias_matches, normalize};

pub use decompress::decompress;
pub use error::ModError;
pub use modinfo::{ModInfo, modinfo_from_elf};
pub use read::read_module;
pub use tree::{ModuleTree, Resolved};

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rootstock_core::errno::Errno;

    use super::test_support::strings;
    use super::*;

    #[test]
    fn error_messages() {
        let p = || PathBuf::from("/m/x.ko");
        let cases: Vec<(ModError, &str)> = vec![
            (
                ModError::Io { path: p(), errno: Errno::NOENT },
                "/m/x.ko: ENOENT 2 (No such file or directory)",
            ),
            (
                ModError::NoKernel { dir: "/lib/modules/9".into(), kver: "9".into(), errno: Errno::NOENT },
                "no modules for kernel 9: /lib/modules/9: ENOENT 2 (No such file or directory) (choose the \
                 kernel with --kver and --modules-dir)",
            ),
            (
                ModError::NotElf { path: p(), reason: "too small".into() },
                "/m/x.ko: not a kernel module (not an ELF file: too small)",
            ),
            (ModError::NoModinfo { path: p() }, "/m/x.ko: not a kernel module (no .modinfo section)"),
            (
                ModError::Decompress { path: p(), reason: "gzip: invalid gzip header".into() },
                "/m/x.ko: cannot decompress: gzip: invalid gzip header",
            ),
            (
                ModError::NotFound { name: "nosuch".into(), dir: "/lib/modules/9".into() },
                "module nosuch: neither a module file under /lib/modules/9 nor built into the kernel \
                 (modules.builtin)",
            ),
            (
                ModError::WrongKernel { path: p(), vermagic: "5.10.0 SMP".into(), kver: "6.1.0".into() },
                "/m/x.ko: built for kernel \"5.10.0 SMP\", not 6.1.0",
            ),
            (IndexError::Cycle(strings(&["a", "b", "a"])).into(), "module dependency cycle: a -> b -> a"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
