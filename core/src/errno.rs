//! Errno values with their symbolic names, for boot failure messages that an
//! operator can search for: `ENOENT 2 (No such file or directory)`.
//!
//! [`Errno`] wraps rustix's; the code names errnos by rustix's constants
//! (`Errno::NOENT`), never by number.

use std::fmt;

/// An errno from the kernel (or, for a failure that has none, the nearest
/// one: see [`Errno::from_io`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub rustix::io::Errno);

/// The asm-generic names (x86_64 and aarch64 share them), by number.
const NAMES: [&str; 134] = [
    "",
    "EPERM",
    "ENOENT",
    "ESRCH",
    "EINTR",
    "EIO",
    "ENXIO",
    "E2BIG",
    "ENOEXEC",
    "EBADF",
    "ECHILD",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EFAULT",
    "ENOTBLK",
    "EBUSY",
    "EEXIST",
    "EXDEV",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "ENFILE",
    "EMFILE",
    "ENOTTY",
    "ETXTBSY",
    "EFBIG",
    "ENOSPC",
    "ESPIPE",
    "EROFS",
    "EMLINK",
    "EPIPE",
    "EDOM",
    "ERANGE",
    "EDEADLK",
    "ENAMETOOLONG",
    "ENOLCK",
    "ENOSYS",
    "ENOTEMPTY",
    "ELOOP",
    "",
    "ENOMSG",
    "EIDRM",
    "ECHRNG",
    "EL2NSYNC",
    "EL3HLT",
    "EL3RST",
    "ELNRNG",
    "EUNATCH",
    "ENOCSI",
    "EL2HLT",
    "EBADE",
    "EBADR",
    "EXFULL",
    "ENOANO",
    "EBADRQC",
    "EBADSLT",
    "",
    "EBFONT",
    "ENOSTR",
    "ENODATA",
    "ETIME",
    "ENOSR",
    "ENONET",
    "ENOPKG",
    "EREMOTE",
    "ENOLINK",
    "EADV",
    "ESRMNT",
    "ECOMM",
    "EPROTO",
    "EMULTIHOP",
    "EDOTDOT",
    "EBADMSG",
    "EOVERFLOW",
    "ENOTUNIQ",
    "EBADFD",
    "EREMCHG",
    "ELIBACC",
    "ELIBBAD",
    "ELIBSCN",
    "ELIBMAX",
    "ELIBEXEC",
    "EILSEQ",
    "ERESTART",
    "ESTRPIPE",
    "EUSERS",
    "ENOTSOCK",
    "EDESTADDRREQ",
    "EMSGSIZE",
    "EPROTOTYPE",
    "ENOPROTOOPT",
    "EPROTONOSUPPORT",
    "ESOCKTNOSUPPORT",
    "EOPNOTSUPP",
    "EPFNOSUPPORT",
    "EAFNOSUPPORT",
    "EADDRINUSE",
    "EADDRNOTAVAIL",
    "ENETDOWN",
    "ENETUNREACH",
    "ENETRESET",
    "ECONNABORTED",
    "ECONNRESET",
    "ENOBUFS",
    "EISCONN",
    "ENOTCONN",
    "ESHUTDOWN",
    "ETOOMANYREFS",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTDOWN",
    "EHOSTUNREACH",
    "EALREADY",
    "EINPROGRESS",
    "ESTALE",
    "EUCLEAN",
    "ENOTNAM",
    "ENAVAIL",
    "EISNAM",
    "EREMOTEIO",
    "EDQUOT",
    "ENOMEDIUM",
    "EMEDIUMTYPE",
    "ECANCELED",
    "ENOKEY",
    "EKEYEXPIRED",
    "EKEYREVOKED",
    "EKEYREJECTED",
    "EOWNERDEAD",
    "ENOTRECOVERABLE",
    "ERFKILL",
    "EHWPOISON",
];

macro_rules! named {
    ($($name:ident),* $(,)?) => {
        impl Errno {
            $(pub const $name: Errno = Errno(rustix::io::Errno::$name);)*
        }
    };
}

// The errnos rootstock's code names; any other is still printed by name.
named!(
    PERM,
    NOENT,
    IO,
    NOEXEC,
    NOMEM,
    ACCESS,
    BUSY,
    EXIST,
    NODEV,
    NOTDIR,
    ISDIR,
    INVAL,
    NOSPC,
    ROFS,
    NOSYS,
    NOTEMPTY,
    LOOP,
    NODATA,
    BADMSG,
    OPNOTSUPP,
    NOKEY,
    KEYREJECTED,
    NAMETOOLONG,
    XDEV,
    NXIO,
    FBIG,
    AGAIN,
    STALE
);

impl Errno {
    /// The errno numbered `n`; a number no kernel returns (outside
    /// 1..=4095) is EIO.
    pub fn from_raw(n: i32) -> Errno {
        if (1..=4095).contains(&n) { Errno(rustix::io::Errno::from_raw_os_error(n)) } else { Errno::IO }
    }

    pub fn raw(self) -> i32 {
        self.0.raw_os_error()
    }

    /// The errno of an I/O error. Errors std makes up without one get the
    /// errno that says what happened (an allocation that failed is ENOMEM,
    /// a file that ended early EIO), never "0 (Success)".
    pub fn from_io(e: &std::io::Error) -> Errno {
        use std::io::ErrorKind;
        if let Some(n) = e.raw_os_error() {
            return Errno::from_raw(n);
        }
        match e.kind() {
            ErrorKind::NotFound => Errno::NOENT,
            ErrorKind::PermissionDenied => Errno::ACCESS,
            ErrorKind::OutOfMemory => Errno::NOMEM,
            ErrorKind::InvalidInput | ErrorKind::InvalidData => Errno::INVAL,
            ErrorKind::AlreadyExists => Errno::EXIST,
            ErrorKind::Unsupported => Errno::OPNOTSUPP,
            ErrorKind::FileTooLarge => Errno::FBIG,
            _ => Errno::IO,
        }
    }

    /// `ENOENT`, or `E?` for a number outside the table.
    pub fn name(self) -> &'static str {
        match NAMES.get(self.raw() as usize) {
            Some(n) if !n.is_empty() => n,
            _ => "E?",
        }
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Errno {
        Errno(e)
    }
}

impl From<std::io::Error> for Errno {
    fn from(e: std::io::Error) -> Errno {
        Errno::from_io(&e)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::io::Error::from_raw_os_error(self.raw()).to_string();
        // std appends " (os error N)"; keep only the description.
        let text = text.split(" (os error").next().unwrap_or("");
        write!(f, "{} {} ({})", self.name(), self.raw(), text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno as R;

    #[test]
    fn display_names_the_errno() {
        assert_eq!(Errno::ROFS.to_string(), "EROFS 30 (Read-only file system)");
        assert_eq!(Errno::NOENT.to_string(), "ENOENT 2 (No such file or directory)");
        assert_eq!(Errno::from_raw(4000).to_string(), "E? 4000 (Unknown error 4000)");
        assert_eq!(Errno::from_raw(0), Errno::IO);
    }

    #[test]
    fn every_name_matches_the_kernels_number() {
        let known = [
            (R::PERM, "EPERM"),
            (R::SRCH, "ESRCH"),
            (R::CHILD, "ECHILD"),
            (R::NOTBLK, "ENOTBLK"),
            (R::TXTBSY, "ETXTBSY"),
            (R::DEADLK, "EDEADLK"),
            (R::NOMSG, "ENOMSG"),
            (R::BADE, "EBADE"),
            (R::BFONT, "EBFONT"),
            (R::NODATA, "ENODATA"),
            (R::BADMSG, "EBADMSG"),
            (R::ILSEQ, "EILSEQ"),
            (R::OPNOTSUPP, "EOPNOTSUPP"),
            (R::CONNREFUSED, "ECONNREFUSED"),
            (R::STALE, "ESTALE"),
            (R::UCLEAN, "EUCLEAN"),
            (R::DQUOT, "EDQUOT"),
            (R::CANCELED, "ECANCELED"),
            (R::NOKEY, "ENOKEY"),
            (R::KEYREJECTED, "EKEYREJECTED"),
            (R::NOTRECOVERABLE, "ENOTRECOVERABLE"),
            (R::HWPOISON, "EHWPOISON"),
        ];
        for (e, name) in known {
            assert_eq!(Errno(e).name(), name, "{}", e.raw_os_error());
        }
        // Every number the kernel uses has a name (41 and 58 are unused aliases).
        for n in (1..=133).filter(|n| ![41, 58].contains(n)) {
            assert!(Errno::from_raw(n).name().starts_with('E') && Errno::from_raw(n).name() != "E?", "{n}");
        }
    }

    #[test]
    fn io_errors_without_an_errno_get_the_nearest_one() {
        use std::io::{Error, ErrorKind};
        assert_eq!(Errno::from_io(&Error::from(ErrorKind::OutOfMemory)), Errno::NOMEM);
        assert_eq!(Errno::from_io(&Error::from(ErrorKind::UnexpectedEof)), Errno::IO);
        assert_eq!(Errno::from_io(&Error::from_raw_os_error(30)), Errno::ROFS);
    }
}
