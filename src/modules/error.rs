//! What goes wrong with modules, each naming the file or module.

use std::path::PathBuf;

use rootstock_core::errno::Errno;
use rootstock_core::modules::IndexError;

/// A decompressed module larger than this is refused (a decompression bomb
/// or a corrupt file; the largest real modules are a few tens of MiB).
pub(crate) const MAX_MODULE_SIZE: usize = 512 << 20;

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
