//! fs-verity: a file's digest as the kernel measures it.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

/// `FS_IOC_MEASURE_VERITY`: `_IOWR('f', 134, struct fsverity_digest)`.
const FS_IOC_MEASURE_VERITY: libc::c_ulong = 0xc004_6686;
/// `FS_VERITY_HASH_ALG_SHA256`
const SHA256: u16 = 1;

/// `struct fsverity_digest` with room for a SHA-256 digest.
#[repr(C)]
struct Digest {
    algorithm: u16,
    size: u16,
    digest: [u8; 32],
}

/// The file's fs-verity digest (SHA-256): `ENODATA` when fs-verity is off,
/// `EOPNOTSUPP`/`ENOTTY` where the filesystem has none, `EINVAL` for
/// another algorithm.
pub fn measure(fd: BorrowedFd) -> Result<[u8; 32], Errno> {
    let mut d = Digest { algorithm: 0, size: 32, digest: [0; 32] };
    // SAFETY: `d` is a `struct fsverity_digest` whose `size` says how many
    // digest bytes follow it (32, all of them in `d`); the kernel writes at
    // most that many, and `d` outlives the call.
    #[allow(unsafe_code)]
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_MEASURE_VERITY as _, &mut d as *mut Digest) };
    if r < 0 {
        return Err(Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)));
    }
    if d.algorithm != SHA256 || d.size != 32 {
        return Err(Errno::INVAL);
    }
    Ok(d.digest)
}
