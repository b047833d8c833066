//! One error type for everything a command can fail on; each variant names
//! the step, and carries the path and errno where there is one.

use std::fmt;
use std::path::PathBuf;

use crate::cmdline::CmdlineError;
use crate::config::ConfigError;
use crate::errno::Errno;
use crate::layout::LayoutError;
use crate::prepare::NothingBootable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    ReadCmdline { path: PathBuf, errno: Errno },
    Cmdline(CmdlineError),
    Config(ConfigError),
    SysrootMissing { path: PathBuf, errno: Errno },
    SysrootNotMounted { path: PathBuf },
    Layout(LayoutError),
    NothingBootable(NothingBootable),
    Usage(String),
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
