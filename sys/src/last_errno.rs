//! The errno of the raw system call that just failed: the `ioctl`s of
//! `verity` and `loopdev` (a leaf, so that neither imports the crate root).

/// `errno` after a raw call that returned -1.
pub(crate) fn last_errno() -> rustix::io::Errno {
    rustix::io::Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(rustix::io::Errno::IO)
}
