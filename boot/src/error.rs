//! One error type for everything the boot program can fail on; each variant
//! names the step, and carries the path and errno where there is one.

use std::path::PathBuf;

use rootstock_core::cmdline::CmdlineError;
use rootstock_core::config::ConfigError;
use rootstock_core::errno::Errno;
use rootstock_core::prepare::NothingBootable;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("cannot read the kernel command line {}: {errno}", path.display())]
    ReadCmdline { path: PathBuf, errno: Errno },
    /// The kernel command line is not a regular file, or too large.
    #[error("cannot read the kernel command line: {0}")]
    ReadCmdlineFile(rootstock_core::confine::ReadError),
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    #[error("config: {0}")]
    Config(#[from] ConfigError),
    #[error("the physical root {}: {errno}", path.display())]
    SysrootMissing { path: PathBuf, errno: Errno },
    #[error(
        "{} is not a mount point: mount the physical root there first (prepare-root moves the \
         deployment on top of it)",
        path.display()
    )]
    SysrootNotMounted { path: PathBuf },
    #[error(transparent)]
    NothingBootable(#[from] NothingBootable),
    /// PID 1: mounting devtmpfs, proc, sysfs or /run failed.
    #[error("step: mount {fstype} on {}\nerror: {errno}", path.display())]
    EarlyMount { fstype: &'static str, path: PathBuf, errno: Errno },
    /// PID 1: no `root=` on the kernel command line.
    #[error(
        "step: find the root device\nerror: no root= on the kernel command line (root=/dev/vda2, \
         root=UUID=..., root=LABEL=..., root=PARTUUID=...)"
    )]
    NoRootArgument,
    #[error("step: find the root device\nerror: root={value}: {message}")]
    BadRootArgument { value: String, message: String },
    /// PID 1: the root device did not appear in time.
    #[error("{}", root_not_found(spec, *waited_secs, seen, modules))]
    RootNotFound { spec: String, waited_secs: u64, seen: Vec<String>, modules: Vec<String> },
    #[error(
        "step: mount the root device\nerror: {}: no known filesystem (ext4, xfs, btrfs, vfat, erofs); \
         give rootfstype=",
        device.display()
    )]
    UnknownRootFilesystem { device: PathBuf },
    #[error(
        "step: mount the root device\npath: {} on {} (type {fstype}, options {options:?})\nerror: {errno}",
        device.display(),
        target.display()
    )]
    MountRoot { device: PathBuf, target: PathBuf, fstype: String, options: String, errno: Errno },
    /// PID 1: a step of switching root failed.
    #[error("step: switch root: {step}\npath: {}\nerror: {errno}", path.display())]
    SwitchRoot { step: &'static str, path: PathBuf, errno: Errno },
    #[error("step: start init\npath: {}\nerror: {errno}", path.display())]
    ExecInit { path: PathBuf, errno: Errno },
    #[error("step: reboot into the loaded kernel (kexec)\npath: {}\nerror: {errno}", kernel.display())]
    Kexec { kernel: PathBuf, errno: Errno },
}

impl Error {
    /// The command line could not be read: an open that failed names the
    /// path and errno; a FIFO, a device or a huge file says so.
    pub fn read_cmdline(e: rootstock_core::confine::ReadError) -> Error {
        match e {
            rootstock_core::confine::ReadError::Open { path, errno } => Error::ReadCmdline { path, errno },
            e => Error::ReadCmdlineFile(e),
        }
    }
}

fn root_not_found(spec: &str, waited_secs: u64, seen: &[String], modules: &[String]) -> String {
    let mut s =
        format!("step: find the root device\nerror: root={spec} did not appear within {waited_secs} s");
    if seen.is_empty() {
        s.push_str("\nblock devices seen: none");
    } else {
        s.push_str("\nblock devices seen:");
        for d in seen {
            s.push_str("\n  ");
            s.push_str(d);
        }
    }
    let modules = if modules.is_empty() { "none".to_string() } else { modules.join(" ") };
    s.push_str(&format!("\nmodules loaded: {modules}\n(rootstock.root-timeout=SECONDS waits longer)"));
    s
}
