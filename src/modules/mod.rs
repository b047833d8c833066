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
mod modinfo;
#[cfg(test)]
pub(crate) mod test_support;
mod tree;

use std::path::{Path, PathBuf};

use rootstock_core::errno::Errno;
pub use rootstock_core::modules::{INDEX_FILE, Index, IndexEntry, IndexError, alias_matches, normalize};

pub use decompress::decompress;
pub use modinfo::{ModInfo, modinfo_from_elf};
pub use tree::{ModuleTree, Resolved};

/// A decompressed module larger than this is refused (a decompression bomb
/// or a corrupt file; the largest real modules are a few tens of MiB).
const MAX_MODULE_SIZE: usize = 512 << 20;

/// What went wrong with modules, each naming the file or module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModError {
    #[error("{}: {errno}", path.display())]
    Io { path: PathBuf, errno: Errno },
    /// A file that is there but is not read: not a regular file (a FIFO, a
    /// device), or larger than its cap.
    #[error(transparent)]
    Read(#[from] rootstock_core::confine::ReadError),
    /// The kernel's module directory cannot be read.
    #[error(
        "no modules for kernel {kver}: {}: {errno} (choose the kernel with --kver and --modules-dir)",
        dir.display()
    )]
    NoKernel { dir: PathBuf, kver: String, errno: Errno },
    #[error("{}: not a kernel module (not an ELF file: {reason})", path.display())]
    NotElf { path: PathBuf, reason: String },
    #[error("{}: not a kernel module (no .modinfo section)", path.display())]
    NoModinfo { path: PathBuf },
    /// A name in `.modinfo` that would break the line-based module index.
    #[error(
        "{}: .modinfo {field}={} holds a control character, a space or a `/`: refused",
        path.display(),
        rootstock_core::text::one_line(value)
    )]
    BadName { path: PathBuf, field: &'static str, value: String },
    #[error("{}: cannot decompress: {reason}", path.display())]
    Decompress { path: PathBuf, reason: String },
    /// A requested name that is neither a module nor built into the kernel.
    #[error(
        "module {name}: neither a module file under {} nor built into the kernel (modules.builtin)",
        dir.display()
    )]
    NotFound { name: String, dir: PathBuf },
    /// A module built for another kernel.
    #[error("{}: built for kernel {vermagic:?}, not {kver}", path.display())]
    WrongKernel { path: PathBuf, vermagic: String, kver: String },
    /// A dependency graph or index that cannot be used.
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// `ext4.ko.xz` → `ext4`; None for a file that is not a module.
fn module_stem(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .filter(|s| !s.is_empty())
}

/// Read a module file: its uncompressed contents and its `.modinfo`.
pub fn read_module(path: &Path) -> Result<(Vec<u8>, ModInfo), ModError> {
    // O_NONBLOCK, a regular file, at most MAX_MODULE_SIZE (a FIFO swapped
    // in after the tree was listed cannot block, a device is never read).
    let raw = rootstock_core::confine::read_file(path, MAX_MODULE_SIZE as u64)?;
    let bytes = decompress(path, raw)?;
    let info = modinfo_from_elf(&bytes, path)?;
    Ok((bytes, info))
}

#[cfg(test)]
mod tests {
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
