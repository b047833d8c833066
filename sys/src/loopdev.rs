//! A read-only loop device over an open file, for the kernels (and the
//! filesystems: tmpfs) where EROFS cannot mount a file itself.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};

use rustix::io::Errno;

/// `LOOP_CTL_GET_FREE` (linux/loop.h): the number of a free loop device.
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
/// `LOOP_CONFIGURE` (Linux ≥ 5.8): attach a file and set its flags at once.
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
/// `LO_FLAGS_READ_ONLY`
const LO_FLAGS_READ_ONLY: u32 = 1;
/// `LO_FLAGS_AUTOCLEAR`: the device lets go of the file once the last
/// user (the mount) is gone.
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Free devices taken by someone else between asking and attaching.
const ATTEMPTS: usize = 8;

/// `struct loop_info64`
#[repr(C)]
struct Info {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config`
#[repr(C)]
struct Config {
    fd: u32,
    block_size: u32,
    info: Info,
    reserved: [u64; 8],
}

// The sizes linux/loop.h gives them.
const _: () = assert!(std::mem::size_of::<Info>() == 232);
const _: () = assert!(std::mem::size_of::<Config>() == 304);

/// Attach `file` read-only (and auto-clearing) to a free loop device: its
/// path, and the device open (keep it until the mount holds the device).
pub fn attach_read_only(file: BorrowedFd) -> Result<(PathBuf, OwnedFd), Errno> {
    let ctl = rustix::fs::open("/dev/loop-control", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
    let mut last = Errno::BUSY;
    for _ in 0..ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument; `ctl` is open.
        #[allow(unsafe_code)]
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(crate::last_errno::last_errno());
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        let config = Config {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info: Info {
                device: 0,
                inode: 0,
                rdevice: 0,
                offset: 0,
                sizelimit: 0,
                number: 0,
                encrypt_type: 0,
                encrypt_key_size: 0,
                flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                file_name: [0; 64],
                crypt_name: [0; 64],
                encrypt_key: [0; 32],
                init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: `dev` and `file` are open for the whole call; `config` is
        // a live `struct loop_config` (the layout linux/loop.h gives it),
        // which the kernel only reads.
        #[allow(unsafe_code)]
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE as _, &config as *const Config) };
        if r == 0 {
            return Ok((path, dev));
        }
        last = crate::last_errno::last_errno();
        // EBUSY: another process attached this device first; ask again.
        if last != Errno::BUSY {
            break;
        }
    }
    Err(last)
}
