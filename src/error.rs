//! One error type for the host tool's commands; each variant names the step,
//! and carries the path and errno where there is one.

use std::path::PathBuf;

use rootstock_core::config::ConfigError;
use rootstock_core::counting::CountingError;
use rootstock_core::layout::LayoutError;
use rootstock_core::soft_reboot;

use crate::mkinitramfs::MkError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("mkinitramfs: {0}")]
    Mkinitramfs(#[from] MkError),
    #[error(transparent)]
    Counting(#[from] CountingError),
    #[error(transparent)]
    Lock(#[from] rootstock_core::lock::LockError),
    /// `bless`: the running root is none of the physical root's deployments.
    #[error(
        "{} is none of the deployments under {}: not booted from an OSTree deployment?",
        root.display(),
        sysroot.display()
    )]
    NotBooted { sysroot: PathBuf, root: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    SoftReboot(#[from] soft_reboot::Error),
    #[error("kernel-hook: {why}")]
    KernelHook { why: String },
    #[error("--action {value}: not auto, reboot or mark")]
    BadActionArg { value: String },
    #[error("rollback: {why} (the deployment is marked bad: the next boot falls back)")]
    Rollback { why: String },
    #[error("{value}: not a deployment (an index, `rollback` or CHECKSUM.SERIAL)")]
    BadDeploymentArg { value: String },
    /// `bless`: the boot loader's counted entry could not be renamed.
    #[error("boot loader entry: {why}")]
    LoaderEntry { why: String },
    #[error("{}: not a mount point (where is the physical root mounted? see --sysroot)", path.display())]
    SysrootNotMounted { path: PathBuf },
}
