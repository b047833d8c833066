//! fs-verity (linux/fsverity.h): enable it on a file, read the kernel's
//! digest of one. SHA-256 over 4096-byte blocks, no salt, as ostree and
//! composefs use it.

use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

/// `FS_IOC_ENABLE_VERITY`: `_IOW('f', 133, struct fsverity_enable_arg)`.
const FS_IOC_ENABLE_VERITY: libc::c_ulong = 0x4080_6685;
/// `FS_IOC_MEASURE_VERITY`: `_IOWR('f', 134, struct fsverity_digest)`.
const FS_IOC_MEASURE_VERITY: libc::c_ulong = 0xc004_6686;
/// `FS_VERITY_HASH_ALG_SHA256`.
const HASH_ALG_SHA256: u16 = 1;

/// `struct fsverity_enable_arg` (128 bytes).
#[repr(C)]
struct EnableArg {
    version: u32,
    hash_algorithm: u32,
    block_size: u32,
    salt_size: u32,
    salt_ptr: u64,
    sig_size: u32,
    reserved1: u32,
    sig_ptr: u64,
    reserved2: [u64; 11],
}
const _: () = assert!(size_of::<EnableArg>() == 128);

/// `struct fsverity_digest` with room for the largest digest (SHA-512).
#[repr(C)]
struct Digest {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; 64],
}
const _: () = assert!(size_of::<Digest>() == 4 + 64);

/// Enable fs-verity on the regular file open (read-only, and nobody may
/// have it open for writing: `ETXTBSY`) at `fd`: SHA-256, 4096-byte
/// blocks, no salt, no signature. `EEXIST` when it is already enabled,
/// `EOPNOTSUPP` or `ENOTTY` where the filesystem cannot.
pub fn enable(fd: BorrowedFd) -> Result<(), Errno> {
    let arg = EnableArg {
        version: 1,
        hash_algorithm: u32::from(HASH_ALG_SHA256),
        block_size: 4096,
        salt_size: 0,
        salt_ptr: 0,
        sig_size: 0,
        reserved1: 0,
        sig_ptr: 0,
        reserved2: [0; 11],
    };
    // SAFETY: `fd` is an open descriptor for the whole call (borrowed);
    // `arg` is a live `struct fsverity_enable_arg` of the size the request
    // number encodes, which the kernel only reads; its salt and signature
    // pointers are null with sizes 0.
    #[allow(unsafe_code)]
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_ENABLE_VERITY as _, &arg as *const EnableArg) };
    if r < 0 { Err(crate::last_errno::last_errno()) } else { Ok(()) }
}

/// The kernel's fs-verity digest of the file open at `fd` (the SHA-256 of
/// its `fsverity_descriptor`). `ENODATA` when verity is not enabled on it;
/// `EINVAL` when it is, with a hash algorithm other than SHA-256.
pub fn measure(fd: BorrowedFd) -> Result<[u8; 32], Errno> {
    let mut d = Digest { digest_algorithm: 0, digest_size: 64, digest: [0; 64] };
    // SAFETY: `fd` is an open descriptor for the whole call; `d` is a live
    // `struct fsverity_digest` whose `digest_size` (64) is the room after
    // its header that the kernel may write into (EOVERFLOW if too small).
    #[allow(unsafe_code)]
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_MEASURE_VERITY as _, &mut d as *mut Digest) };
    if r < 0 {
        return Err(crate::last_errno::last_errno());
    }
    if d.digest_algorithm != HASH_ALG_SHA256 || d.digest_size != 32 {
        return Err(Errno::INVAL);
    }
    let mut out = [0; 32];
    out.copy_from_slice(&d.digest[..32]);
    Ok(out)
}
