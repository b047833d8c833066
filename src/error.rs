//! One error type for everything a command can fail on; each variant names
//! the step, and carries the path and errno where there is one.

use std::fmt;
use std::path::PathBuf;

use crate::cmdline::CmdlineError;
use crate::config::ConfigError;
use crate::counting::CountingError;
use crate::errno::Errno;
use crate::layout::LayoutError;
use crate::mkinitramfs::MkError;
use crate::prepare::NothingBootable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    ReadCmdline {
        path: PathBuf,
        errno: Errno,
    },
    Cmdline(CmdlineError),
    Config(ConfigError),
    SysrootMissing {
        path: PathBuf,
        errno: Errno,
    },
    SysrootNotMounted {
        path: PathBuf,
    },
    Layout(LayoutError),
    NothingBootable(NothingBootable),
    Usage(String),
    Mkinitramfs(MkError),
    Counting(CountingError),
    /// `bless`: the running root is none of the physical root's deployments.
    NotBooted {
        sysroot: PathBuf,
        root: PathBuf,
    },
    /// PID 1: mounting devtmpfs, proc, sysfs or /run failed.
    EarlyMount {
        fstype: &'static str,
        path: &'static str,
        errno: Errno,
    },
    /// PID 1: no `root=` on the kernel command line.
    NoRootArgument,
    BadRootArgument {
        value: String,
        message: String,
    },
    /// PID 1: the root device did not appear in time.
    RootNotFound {
        spec: String,
        waited_secs: u64,
        seen: Vec<String>,
        modules: Vec<String>,
    },
    UnknownRootFilesystem {
        device: PathBuf,
    },
    MountRoot {
        device: PathBuf,
        fstype: String,
        options: String,
        errno: Errno,
    },
    /// PID 1: a step of switching root failed.
    SwitchRoot {
        step: &'static str,
        path: PathBuf,
        errno: Errno,
    },
    ExecInit {
        path: PathBuf,
        errno: Errno,
    },
    Kexec {
        kernel: PathBuf,
        errno: Errno,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ReadCmdline { path, errno } => {
                write!(f, "cannot read the kernel command line {}: {errno}", path.display())
            }
            Error::Cmdline(e) => write!(f, "{e}"),
            Error::Config(e) => write!(f, "config: {e}"),
            Error::SysrootMissing { path, errno } => {
                write!(f, "the physical root {}: {errno}", path.display())
            }
            Error::SysrootNotMounted { path } => write!(
                f,
                "{} is not a mount point: mount the physical root there first (prepare-root moves \
                 the deployment on top of it)",
                path.display()
            ),
            Error::Layout(e) => write!(f, "{e}"),
            Error::NothingBootable(e) => write!(f, "{e}"),
            Error::Usage(m) => write!(f, "{m}"),
            Error::Mkinitramfs(e) => write!(f, "mkinitramfs: {e}"),
            Error::Counting(e) => write!(f, "{e}"),
            Error::NotBooted { sysroot, root } => write!(
                f,
                "{} is none of the deployments under {}: not booted from an OSTree deployment?",
                root.display(),
                sysroot.display()
            ),
            Error::EarlyMount { fstype, path, errno } => {
                write!(f, "step: mount {fstype} on {path}\nerror: {errno}")
            }
            Error::NoRootArgument => write!(
                f,
                "step: find the root device\nerror: no root= on the kernel command line \
                 (root=/dev/vda2, root=UUID=..., root=LABEL=..., root=PARTUUID=...)"
            ),
            Error::BadRootArgument { value, message } => {
                write!(f, "step: find the root device\nerror: root={value}: {message}")
            }
            Error::RootNotFound { spec, waited_secs, seen, modules } => {
                write!(
                    f,
                    "step: find the root device\nerror: root={spec} did not appear within {waited_secs} s"
                )?;
                if seen.is_empty() {
                    write!(f, "\nblock devices seen: none")?;
                } else {
                    write!(f, "\nblock devices seen:")?;
                    for s in seen {
                        write!(f, "\n  {s}")?;
                    }
                }
                write!(
                    f,
                    "\nmodules loaded: {}",
                    if modules.is_empty() { "none".to_string() } else { modules.join(" ") }
                )?;
                write!(f, "\n(rootstock.root-timeout=SECONDS waits longer)")
            }
            Error::UnknownRootFilesystem { device } => write!(
                f,
                "step: mount the root device\nerror: {}: no known filesystem (ext4, xfs, btrfs, vfat, \
                 erofs); give rootfstype=",
                device.display()
            ),
            Error::MountRoot { device, fstype, options, errno } => write!(
                f,
                "step: mount the root device\npath: {} on /sysroot (type {fstype}, options {options:?})\nerror: {errno}",
                device.display()
            ),
            Error::SwitchRoot { step, path, errno } => {
                write!(f, "step: switch root: {step}\npath: {}\nerror: {errno}", path.display())
            }
            Error::Kexec { kernel, errno } => {
                write!(
                    f,
                    "step: reboot into the loaded kernel (kexec)\npath: {}\nerror: {errno}",
                    kernel.display()
                )
            }
            Error::ExecInit { path, errno } => {
                write!(f, "step: start init\npath: {}\nerror: {errno}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<CmdlineError> for Error {
    fn from(e: CmdlineError) -> Error {
        Error::Cmdline(e)
    }
}
impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}
impl From<LayoutError> for Error {
    fn from(e: LayoutError) -> Error {
        Error::Layout(e)
    }
}
impl From<NothingBootable> for Error {
    fn from(e: NothingBootable) -> Error {
        Error::NothingBootable(e)
    }
}
