//! The syscall layer: the real implementation of rootstock-core's seam
//! ([`rootstock_core::seam::System`]). Everything above it decides; this
//! executes. The only crate with `unsafe`: denied here as everywhere,
//! allowed on each of its blocks alone, each with a `// SAFETY:` comment
//! (the workspace's `clippy::undocumented_unsafe_blocks`).

#![deny(unsafe_code)]

#[cfg(any(target_arch = "aarch64", test))]
pub mod kernel_image;
mod last_errno;
pub mod loopdev;
pub mod verity;

use std::ffi::CString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, StatxAttributes, StatxFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::system::RebootCommand;

use rootstock_core::cpio;
use rootstock_core::errno::Errno;
use rootstock_core::seam::{Clock, ImageVerity, KexecImage, Op, Query, Reboot, System};
use rootstock_core::state::KEXEC_STATE;

/// The real thing.
pub struct Linux;

/// `KEXEC_FILE_NO_INITRAMFS` from linux/kexec.h.
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 4;

/// The syscall number of `kexec_file_load`: the libc crate names it for
/// x86_64 but not for aarch64 with musl, where it is asm-generic's 294.
#[cfg(target_arch = "x86_64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = libc::SYS_kexec_file_load;
#[cfg(target_arch = "aarch64")]
const SYS_KEXEC_FILE_LOAD: libc::c_long = 294;

/// `kexec_file_load(2)`: rustix has no wrapper, so this is the one place
/// with `unsafe`.
fn kexec_file_load(k: &KexecImage) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let kernel = kernel_file(&k.kernel)?;
    let initrd = match (&k.initrd, &k.carry) {
        (Some(path), Some(state)) => match initrd_carrying(path, state) {
            Ok(f) => Some(f),
            // The state is a courtesy; the kexec is what matters.
            Err(e) => {
                log::warn!("cannot add the boot state to {}: {e}: loading it as it is", path.display());
                Some(open_regular(path)?)
            }
        },
        (Some(path), None) => Some(open_regular(path)?),
        (None, _) => None,
    };
    let cmdline = CString::new(k.cmdline.as_bytes()).map_err(|_| Errno::INVAL)?;
    let bytes = cmdline.as_bytes_with_nul();
    let (initrd_fd, flags) = match &initrd {
        Some(f) => (f.as_raw_fd(), 0),
        None => (-1, KEXEC_FILE_NO_INITRAMFS),
    };
    // SAFETY: the descriptors are open for the whole call (the Files live
    // until the end of this function); `cmdline` points to `bytes.len()`
    // bytes ending in NUL, as the kernel requires, and is only read.
    #[allow(unsafe_code)]
    let r = unsafe {
        libc::syscall(
            SYS_KEXEC_FILE_LOAD,
            kernel.as_raw_fd(),
            initrd_fd,
            bytes.len() as libc::c_ulong,
            cmdline.as_ptr(),
            flags,
        )
    };
    if r < 0 { Err(Errno::from_io(&std::io::Error::last_os_error())) } else { Ok(()) }
}

/// Open a kernel or initramfs named by a boot loader entry on the
/// physical root: `O_NONBLOCK` (a FIFO there cannot block PID 1 at open),
/// and only a regular file (EINVAL otherwise, as kexec_file_load would say).
fn open_regular(path: &Path) -> Result<std::fs::File, Errno> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())?;
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        log::error!("kexec: {}: not a regular file", path.display());
        return Err(Errno::INVAL);
    }
    Ok(std::fs::File::from(fd))
}

/// An anonymous memory file, not executable where the kernel knows the
/// flag (Linux >= 6.3 warns on the console otherwise; older kernels refuse
/// it with EINVAL).
fn memfd(name: &str) -> Result<std::fs::File, Errno> {
    use rustix::fs::{MemfdFlags, memfd_create};
    let fd = memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::NOEXEC_SEAL)
        .or_else(|_| memfd_create(name, MemfdFlags::CLOEXEC))?;
    Ok(std::fs::File::from(fd))
}

/// The kernel to load: the file, or on arm64 the raw `Image` inside a gzip
/// or EFI zboot `vmlinuz`, in a memfd ([`kernel_image`]).
#[cfg(not(target_arch = "aarch64"))]
fn kernel_file(path: &Path) -> Result<std::fs::File, Errno> {
    open_regular(path)
}

/// [`kernel_file`] on arm64: a raw `Image` (what its first bytes say) is
/// loaded from the file itself; anything else is read (at most
/// [`kernel_image::INPUT_CAP`]) and unwrapped into a memfd, the compressed
/// bytes dropped first.
#[cfg(target_arch = "aarch64")]
fn kernel_file(path: &Path) -> Result<std::fs::File, Errno> {
    use std::io::Read;
    let file = open_regular(path)?;
    let mut head = [0u8; 64];
    let n = rustix::io::pread(&file, &mut head, 0)?;
    if kernel_image::classify(&head[..n]) == kernel_image::Format::Raw {
        return Ok(file);
    }
    let mut bytes = Vec::new();
    file.take(kernel_image::INPUT_CAP).read_to_end(&mut bytes)?;
    let unwrapped = kernel_image::unwrap(&bytes);
    drop(bytes);
    match unwrapped {
        Ok(None) => open_regular(path),
        Ok(Some(image)) => {
            log::info!("kexec: {} unwrapped to a {}-byte Image", path.display(), image.len());
            let mut f = memfd("rootstock-kernel")?;
            f.write_all(&image)?;
            Ok(f)
        }
        Err(e) => {
            log::error!("kexec: {}: {e}", path.display());
            Err(Errno::NOEXEC)
        }
    }
}

/// The initramfs at `path` with `state` appended as a file of its own
/// archive, in an anonymous memory file (the initramfs on /boot stays as it
/// is).
fn initrd_carrying(path: &Path, state: &str) -> Result<std::fs::File, Errno> {
    let entry = cpio::Entry::file(KEXEC_STATE.trim_start_matches('/'), 0o644, state.as_bytes().to_vec());
    let archive = cpio::write_newc(&[entry]).map_err(|_| Errno::INVAL)?;
    let mut f = memfd("rootstock-initrd")?;
    let len = std::io::copy(&mut open_regular(path)?, &mut f)?;
    f.write_all(&cpio::separator(len))?;
    f.write_all(&archive)?;
    Ok(f)
}

/// Run `shell` as an interactive login shell (`-sh`). When the console's own
/// terminal is known (the last name in `/sys/class/tty/console/active`,
/// e.g. `ttyS0`), the shell runs on it as a session leader with it as the
/// controlling terminal, so job control and Ctrl-C work (`/dev/console`
/// cannot be one); otherwise on the inherited descriptors.
pub fn run_shell(shell: &Path) -> std::io::Result<std::process::ExitStatus> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let shell_cmd = || {
        let mut cmd = std::process::Command::new(shell);
        cmd.arg0("-sh");
        cmd
    };
    let active = std::fs::read_to_string("/sys/class/tty/console/active").unwrap_or_default();
    let tty = active.split_whitespace().last().and_then(|name| {
        // O_NOCTTY: never PID 1's controlling terminal, only the shell's.
        let opts = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOCTTY).clone();
        opts.open(Path::new("/dev").join(name)).ok()
    });
    if let Some(tty) = tty {
        let mut cmd = shell_cmd();
        cmd.stdin(tty.try_clone()?).stdout(tty.try_clone()?).stderr(tty);
        // SAFETY: the closure runs in the child between fork and exec; it
        // only makes two system calls (setsid, ioctl TIOCSCTTY on fd 0, which
        // the Command set up as the terminal) and allocates nothing.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                Ok(())
            });
        }
        match cmd.status() {
            Ok(status) => return Ok(status),
            // E.g. TIOCSCTTY refused: a shell without job control beats none.
            Err(e) => log::warn!("cannot start {} on the console's terminal: {e}", shell.display()),
        }
    }
    shell_cmd().status()
}

const RAMFS_MAGIC: i64 = 0x8584_58f6;
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// `f_type` is i64 with glibc and u64 with musl.
#[allow(clippy::unnecessary_cast)]
fn is_ram_fs(f_type: impl TryInto<i64>) -> bool {
    matches!(f_type.try_into(), Ok(RAMFS_MAGIC | TMPFS_MAGIC))
}

/// [`Op::EmptyRamfs`]: what systemd's switch-root does to the old root
/// (`rm_rf_children` without `REMOVE_ROOT` or `REMOVE_PHYSICAL`,
/// src/shared/rm-rf.c): open it once, check it is the directory expected
/// (`dev`, `ino`: `ESTALE` otherwise) and on a ramfs or tmpfs (`EPERM`
/// otherwise), then delete below it through file descriptors only. The
/// first error is returned after deleting all that can be.
fn empty_ramfs(root: &Path, dev: u64, ino: u64) -> Result<(), Errno> {
    let fd = open_below(rustix::fs::CWD, root)?;
    let st = rustix::fs::fstat(&fd)?;
    if (st.st_dev, st.st_ino) != (dev, ino) {
        return Err(Errno::STALE);
    }
    if !is_ram_fs(rustix::fs::fstatfs(&fd)?.f_type) {
        return Err(Errno::PERM);
    }
    let mount = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)
        .ok()
        .filter(|x| StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::MNT_ID))
        .map(|x| x.stx_mnt_id);
    let mut walk = Emptying { dev, mount, error: None };
    walk.empty(&fd);
    walk.error.map_or(Ok(()), Err)
}

/// A directory in `dir`, opened never through a symlink.
fn open_below(dir: impl std::os::fd::AsFd, name: impl rustix::path::Arg) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// [`empty_ramfs`]'s walk: what is on device `dev` and, when the kernel
/// tells mounts apart (`STATX_MNT_ID`, Linux 5.8), on mount `mount`.
struct Emptying {
    dev: u64,
    mount: Option<u64>,
    error: Option<Errno>,
}

impl Emptying {
    fn failed(&mut self, e: impl Into<Errno>) {
        let e = e.into();
        log::debug!("freeing the initramfs: {e}");
        self.error.get_or_insert(e);
    }

    /// Delete what is in `dir`, depth first, in name order; whether all of
    /// it is gone.
    fn empty(&mut self, dir: &OwnedFd) -> bool {
        let entries = match rustix::fs::Dir::read_from(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.failed(e);
                return false;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) if e.file_name() != c"." && e.file_name() != c".." => {
                    names.push(e.file_name().to_owned())
                }
                Ok(_) => {}
                Err(e) => self.failed(e),
            }
        }
        // No sort: the order of removal does not matter, and a stable sort
        // of CStrings is 4 KB of the boot program.
        let mut all_gone = true;
        for name in &names {
            all_gone &= self.remove(dir, name);
        }
        all_gone
    }

    /// Delete `name` in `dir` (emptied first when a directory); whether it
    /// is gone. What is on another device or mount stays, and so does the
    /// directory holding it.
    fn remove(&mut self, dir: &OwnedFd, name: &CString) -> bool {
        let st = match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => return true,
            Err(e) => {
                self.failed(e);
                return false;
            }
        };
        if st.st_dev != self.dev {
            return false; // another filesystem: the new root, an API filesystem
        }
        let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
        if is_dir && !self.empty_subdir(dir, name, st.st_ino) {
            return false;
        }
        let flags = if is_dir { AtFlags::REMOVEDIR } else { AtFlags::empty() };
        match rustix::fs::unlinkat(dir, name.as_c_str(), flags) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => true,
            Err(e) => {
                self.failed(e);
                false
            }
        }
    }

    /// Empty the directory `name` in `dir` (inode `ino`), unless it is a
    /// mount point (a bind mount of the same filesystem has the same
    /// device): whether it is empty now.
    fn empty_subdir(&mut self, dir: &OwnedFd, name: &CString, ino: u64) -> bool {
        match rustix::fs::statx(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW, StatxFlags::MNT_ID) {
            Ok(x) => {
                let root = StatxAttributes::MOUNT_ROOT;
                let known = StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::MNT_ID);
                if x.stx_attributes_mask.contains(root) && x.stx_attributes.contains(root)
                    || known && self.mount.is_some_and(|m| m != x.stx_mnt_id)
                {
                    return false;
                }
            }
            // Before Linux 4.11 only another device shows a mount.
            Err(rustix::io::Errno::NOSYS) => {}
            Err(e) => {
                self.failed(e);
                return false;
            }
        }
        let sub = match open_below(dir, name.as_c_str()) {
            Ok(fd) => fd,
            Err(e) => {
                self.failed(e);
                return false;
            }
        };
        // The directory opened is the one looked at, not one put there since.
        match rustix::fs::fstat(&sub) {
            Ok(st) if (st.st_dev, st.st_ino) == (self.dev, ino) => self.empty(&sub),
            Ok(_) => false,
            Err(e) => {
                self.failed(e);
                false
            }
        }
    }
}

/// A NUL inside a string cannot be passed to the kernel.
fn c_string(bytes: impl Into<Vec<u8>>) -> Result<CString, Errno> {
    CString::new(bytes).map_err(|_| Errno::INVAL)
}

/// A directory, opened to work on the names in it.
fn open_dir(path: &Path) -> Result<OwnedFd, Errno> {
    Ok(rustix::fs::open(path, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?)
}

/// An `O_PATH` handle of `path` with no symlink anywhere on the way
/// (`ELOOP`): what a mount takes as its source or target. The kernel checks
/// it (`openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`); on
/// kernels without `openat2` (before 5.6), a walk that opens one component
/// at a time with `O_NOFOLLOW` and refuses a symlink.
fn open_mount_point(path: &Path) -> Result<OwnedFd, Errno> {
    use rustix::fs::ResolveFlags;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(rustix::fs::CWD, path, flags, Mode::empty(), resolve) {
        Err(rustix::io::Errno::NOSYS) => open_walk(path)?,
        r => r?,
    };
    if rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) == rustix::fs::FileType::Symlink {
        return Err(Errno::LOOP);
    }
    Ok(fd)
}

/// [`open_mount_point`] without `openat2`: component by component.
fn open_walk(path: &Path) -> Result<OwnedFd, Errno> {
    walk_nofollow(path, false, |_, _| Ok(()))
}

/// Walk `path` a component at a time from `/` (or `.` for a relative
/// path), each opened `O_PATH|O_NOFOLLOW`: a symlink on the way is `ELOOP`.
/// `before` runs in each directory before its next component is opened
/// there; with `dirs_only`, every component must be a directory
/// (`ENOTDIR`). Returns the last one opened.
fn walk_nofollow(
    path: &Path,
    dirs_only: bool,
    mut before: impl FnMut(&OwnedFd, &std::ffi::OsStr) -> Result<(), Errno>,
) -> Result<OwnedFd, Errno> {
    use rustix::fs::FileType;
    use std::path::Component;
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let start = if path.is_absolute() { "/" } else { "." };
    let mut fd = rustix::fs::open(start, flags | OFlags::DIRECTORY, Mode::empty())?;
    for c in path.components() {
        let name = match c {
            Component::RootDir | Component::CurDir => continue,
            Component::ParentDir => std::ffi::OsStr::new(".."),
            Component::Normal(n) => n,
            Component::Prefix(_) => return Err(Errno::INVAL),
        };
        before(&fd, name)?;
        fd = rustix::fs::openat(&fd, name, flags, Mode::empty())?;
        match FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) {
            FileType::Symlink => return Err(Errno::LOOP),
            FileType::Directory => {}
            _ if dirs_only => return Err(Errno::NOTDIR),
            _ => {}
        }
    }
    Ok(fd)
}

/// A path naming what `fd` is, for the mount calls that take paths: its
/// `/proc/self/fd/N` (the kernel follows that to the very file opened,
/// whatever was swapped in its place since), or, where /proc is not
/// mounted, `path` itself (checked by the open, as close to the call as it
/// gets).
fn fd_path(fd: &OwnedFd, path: &Path) -> std::path::PathBuf {
    proc_fd(fd).unwrap_or_else(|| path.to_path_buf())
}

/// `/proc/self/fd/N` of `fd`, when /proc is mounted.
fn proc_fd(fd: &OwnedFd) -> Option<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    let proc_fd = Path::new("/proc/self/fd");
    proc_fd.is_dir().then(|| proc_fd.join(fd.as_raw_fd().to_string()))
}

/// A bind mount from file descriptors: source and target are opened first
/// (never through a symlink as the last component), then the kernel is
/// handed the fds (`open_tree` + `move_mount`; on kernels without them,
/// the `/proc/self/fd/N` of the same fds), so nothing swapped between the
/// checks and the mount can redirect it.
fn bind_by_fd(source: &Path, target: &Path) -> Result<(), Errno> {
    use rustix::mount::{MoveMountFlags, OpenTreeFlags};
    let (src, dst) = (open_mount_point(source)?, open_mount_point(target)?);
    let clone =
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    match rustix::mount::open_tree(&src, "", clone) {
        Ok(tree) => {
            let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
            Ok(rustix::mount::move_mount(&tree, "", &dst, "", flags)?)
        }
        Err(rustix::io::Errno::NOSYS) => {
            Ok(rustix::mount::mount_bind(fd_path(&src, source), fd_path(&dst, target))?)
        }
        Err(e) => Err(e.into()),
    }
}

/// [`Op::MountImage`]: the image opened once, without following a symlink;
/// its fs-verity measured on that file; that same file mounted, read-only,
/// with the new mount API (`fsopen("erofs")` with the file as its source:
/// Linux ≥ 6.12's file-backed EROFS; else through a read-only loop device
/// that goes away with the mount), then attached at `target`.
fn mount_image(image: &Path, target: &Path, verity: ImageVerity) -> Result<(), Errno> {
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags};
    use std::os::fd::AsFd;
    // As every file read from the physical root: no symlink on the way
    // (the directory walked as a mount point's), O_NONBLOCK (a FIFO put
    // there after the check cannot hold the boot), a regular file.
    let (Some(dir), Some(name)) = (image.parent(), image.file_name()) else { return Err(Errno::INVAL) };
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let file = rustix::fs::openat(open_dir_nofollow(dir)?, name, flags, Mode::empty())?;
    if rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&file)?.st_mode)
        != rustix::fs::FileType::RegularFile
    {
        return Err(Errno::INVAL);
    }
    match verity {
        ImageVerity::Unchecked => {}
        ImageVerity::Required => {
            verity::measure(file.as_fd())?;
        }
        ImageVerity::Digest(want) => {
            if verity::measure(file.as_fd())? != want {
                return Err(Errno::BADMSG);
            }
        }
    }
    let dst = open_mount_point(target)?;
    let erofs = |source: &Path| -> rustix::io::Result<OwnedFd> {
        let fs = rustix::mount::fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC)?;
        rustix::mount::fsconfig_set_string(&fs, "source", source)?;
        rustix::mount::fsconfig_set_flag(&fs, "ro")?;
        rustix::mount::fsconfig_create(&fs)?;
        Ok(fs)
    };
    // The file measured is the file mounted: EROFS is given the open file
    // (/proc/self/fd/N), never the path again; without /proc, the loop
    // device, which takes the descriptor.
    let first = match proc_fd(&file) {
        Some(by_fd) => erofs(&by_fd),
        None => Err(rustix::io::Errno::NOTBLK),
    };
    let fs = match first {
        // Before Linux 6.12, or a file whose filesystem cannot back an
        // EROFS (tmpfs): ENOTBLK, and the file goes through a loop device.
        Err(rustix::io::Errno::NOTBLK) => {
            let (device, _held) = loopdev::attach_read_only(file.as_fd())?;
            erofs(&device)?
        }
        other => other?,
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::MOUNT_ATTR_RDONLY)?;
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    Ok(rustix::mount::move_mount(&mnt, "", &dst, "", flags)?)
}

/// The directory whose entries a marker operation changes: never through a
/// symlink as its last component (`ELOOP`), and the name is one entry of
/// it, never a path (`EINVAL`), so nothing outside it is ever changed.
fn open_entry_dir(dir: &Path, name: &str) -> Result<OwnedFd, Errno> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Errno::INVAL);
    }
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    Ok(rustix::fs::open(dir, flags, Mode::empty())?)
}

/// `finit_module` of the file at `path`.
fn load_module(path: &Path, compressed: bool) -> Result<(), Errno> {
    /// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module itself.
    const MODULE_INIT_COMPRESSED_FILE: i32 = 4;
    let file = std::fs::File::open(path)?;
    let flags = if compressed { MODULE_INIT_COMPRESSED_FILE } else { 0 };
    rustix::system::finit_module(&file, c"", flags)?;
    Ok(())
}

/// Make the console at `path` stdin, stdout and stderr.
fn use_console(path: &Path) -> Result<(), Errno> {
    let c = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    rustix::stdio::dup2_stdin(&c)?;
    rustix::stdio::dup2_stdout(&c)?;
    rustix::stdio::dup2_stderr(&c)?;
    Ok(())
}

impl System for Linux {
    fn execute(&mut self, op: &Op) -> Result<(), Errno> {
        match op {
            Op::Mount { source, target, fstype, flags, data } => {
                let data = c_string(data.as_bytes())?;
                rustix::mount::mount(source, target, fstype.as_str(), *flags, data.as_c_str())?
            }
            Op::MakeRprivate { target } => {
                let fd = open_mount_point(target)?;
                let flags = MountPropagationFlags::REC | MountPropagationFlags::PRIVATE;
                rustix::mount::mount_change(fd_path(&fd, target), flags)?
            }
            Op::Bind { source, target } => bind_by_fd(source, target)?,
            Op::Remount { target, bind, read_only } => {
                let mut flags = MountFlags::empty();
                flags.set(MountFlags::BIND, *bind);
                flags.set(MountFlags::RDONLY, *read_only);
                let fd = open_mount_point(target)?;
                rustix::mount::mount_remount(fd_path(&fd, target), flags, "")?
            }
            Op::Overlay { target, lower, upper, work } => {
                // The layers go to overlayfs as paths (as given, they are
                // what mountinfo shows and what ostree and the differential
                // tests read): each is checked first to have no symlink on
                // its way; the target is the opened one.
                for layer in [lower, upper, work] {
                    open_mount_point(layer)?;
                }
                let fd = open_mount_point(target)?;
                let mut data = b"lowerdir=".to_vec();
                data.extend_from_slice(lower.as_os_str().as_bytes());
                data.extend_from_slice(b",upperdir=");
                data.extend_from_slice(upper.as_os_str().as_bytes());
                data.extend_from_slice(b",workdir=");
                data.extend_from_slice(work.as_os_str().as_bytes());
                let data = c_string(data)?;
                rustix::mount::mount(
                    "overlay",
                    fd_path(&fd, target),
                    "overlay",
                    MountFlags::empty(),
                    data.as_c_str(),
                )?
            }
            Op::MountImage { image, target, verity } => mount_image(image, target, *verity)?,
            Op::ComposefsOverlay { target, metadata, objects, verity, upper, read_only } => {
                // As Op::Overlay: the layers go as paths, each checked to
                // have no symlink on its way; the target is the opened one.
                // Overlayfs splits its options at ',' and ':', so a path
                // with either (or an escape) is refused, not escaped.
                let upper = upper.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
                let layers = [
                    Some(metadata.as_path()),
                    Some(objects.as_path()),
                    upper.map(|u| u.0),
                    upper.map(|u| u.1),
                ];
                for layer in layers.into_iter().flatten() {
                    if layer.as_os_str().as_bytes().iter().any(|b| b",:\\".contains(b)) {
                        return Err(Errno::INVAL);
                    }
                    open_mount_point(layer)?;
                }
                let fd = open_mount_point(target)?;
                let options =
                    rootstock_core::seam::composefs_overlay_options(metadata, objects, *verity, upper);
                let data = c_string(options)?;
                let flags = if *read_only { MountFlags::RDONLY } else { MountFlags::empty() };
                rustix::mount::mount("overlay", fd_path(&fd, target), "overlay", flags, data.as_c_str())?
            }
            Op::Move { source, target } => rustix::mount::mount_move(source, target)?,
            Op::Detach { target } => {
                let fd = open_mount_point(target)?;
                rustix::mount::unmount(fd_path(&fd, target), UnmountFlags::DETACH)?
            }
            Op::DetachMount { target, mount_id } => detach_mount(target, *mount_id)?,
            Op::Mkdir { path } => mkdir_nofollow(path)?,
            Op::WriteFile { path, contents } => write_atomic(path, contents.as_bytes(), true)?,
            Op::Symlink { path, target } => symlink_replace(path, target)?,
            Op::WriteKnob { path, contents } => {
                std::fs::OpenOptions::new().write(true).open(path)?.write_all(contents.as_bytes())?
            }
            Op::CreateExclusive { dir, name } => {
                // O_EXCL: never replace a file someone else wrote.
                rustix::fs::openat(
                    open_entry_dir(dir, name)?,
                    name.as_str(),
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )?;
            }
            Op::RenameNoReplace { dir, from, to } => {
                let d = open_entry_dir(dir, from)?;
                open_entry_dir(dir, to)?;
                rustix::fs::renameat_with(&d, from.as_str(), &d, to.as_str(), RenameFlags::NOREPLACE)?
            }
            Op::Unlink { dir, name } => {
                rustix::fs::unlinkat(open_entry_dir(dir, name)?, name.as_str(), AtFlags::empty())?
            }
            Op::RemoveDir { dir, name } => {
                rustix::fs::unlinkat(open_dir(dir)?, name.as_str(), AtFlags::REMOVEDIR)?
            }
            Op::FsyncDir { path } => rustix::fs::fsync(open_dir(path)?)?,
            Op::SyncFs { path } => rustix::fs::syncfs(open_dir(path)?)?,
            Op::Sync => rustix::fs::sync(),
            Op::Lock { path, wait } => lock(path, *wait)?,
            Op::Unlock { path } => unlock(path),
            Op::EmptyRamfs { root, dev, ino } => empty_ramfs(root, *dev, *ino)?,
            Op::Chdir { path } => rustix::process::chdir(path)?,
            Op::Chroot { path } => rustix::process::chroot(path)?,
            Op::Console { path } => use_console(path)?,
            Op::Exec { path, args } => {
                // Returns only when the exec failed.
                let err = std::process::Command::new(path).arg0(path).args(args).exec();
                return Err(Errno::from_io(&err));
            }
            Op::EmergencyShell { path } => {
                let status = run_shell(path)?;
                log::info!("emergency shell ended ({status}): rebooting");
            }
            Op::LoadModule { path, compressed } => load_module(path, *compressed)?,
            Op::KexecLoad(k) => kexec_file_load(k)?,
            Op::Reboot(how) => {
                let cmd = match how {
                    Reboot::Restart => RebootCommand::Restart,
                    Reboot::PowerOff => RebootCommand::PowerOff,
                    Reboot::Halt => RebootCommand::Halt,
                    Reboot::Kexec => RebootCommand::Kexec,
                };
                rustix::system::reboot(cmd)?
            }
        }
        Ok(())
    }

    fn query(&mut self, q: &Query) -> Result<bool, Errno> {
        Ok(match q {
            Query::ReadOnly { path } => {
                rustix::fs::statvfs(path)?.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY)
            }
            Query::RamFs { path } => is_ram_fs(rustix::fs::statfs(path)?.f_type),
        })
    }
}

impl Clock for Linux {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }

    fn sleep(&self, d: std::time::Duration) {
        std::thread::sleep(d);
    }
}

/// A directory, reached without a symlink anywhere on the way (`ELOOP`),
/// opened to work on the names in it (`openat2` with
/// `RESOLVE_NO_SYMLINKS`, or the component walk before Linux 5.6).
fn open_dir_nofollow(path: &Path) -> Result<OwnedFd, Errno> {
    let fd = open_mount_point(path)?;
    if rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode) != rustix::fs::FileType::Directory
    {
        return Err(Errno::NOTDIR);
    }
    // The O_PATH handle reopened for reading: fsync needs a real one.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(&fd, ".", flags, Mode::empty())?)
}

/// [`Op::Symlink`]: made as `.NAME.tmp` in the directory (one left by an
/// earlier failure is replaced), then renamed over `NAME`.
fn symlink_replace(path: &Path, target: &Path) -> Result<(), Errno> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return Err(Errno::INVAL) };
    let d = open_dir_nofollow(dir)?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(".tmp");
    match rustix::fs::unlinkat(&d, tmp.as_os_str(), AtFlags::empty()) {
        // Nothing left over: the usual case.
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    rustix::fs::symlinkat(target, &d, tmp.as_os_str())?;
    Ok(rustix::fs::renameat(&d, tmp.as_os_str(), &d, name)?)
}

/// [`Op::Mkdir`]: `mkdir -p`, mode 0755, a component at a time, each one
/// opened with `O_NOFOLLOW` before the next is made in it: a symlink on the
/// way is `ELOOP`, and nothing is created through it.
fn mkdir_nofollow(path: &Path) -> Result<(), Errno> {
    walk_nofollow(path, true, |dir, name| match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.into()),
    })
    .map(drop)
}

/// Write `path` so that a reader sees the old contents or the new, never a
/// part, the one atomic write of rootstock (the seam's [`Op::WriteFile`],
/// and `mkinitramfs`'s output):
/// - the directory must exist (it is created through the seam, where the
///   plan shows it) and is reached without a symlink anywhere on the way;
/// - the temporary file, in the same directory, is created
///   `O_CREAT|O_EXCL|O_NOFOLLOW` (never truncating or following what is
///   there), mode 0644;
/// - write, fsync, `renameat` over `path` (`renameat2(RENAME_NOREPLACE)`
///   with `replace` false: `EEXIST` when `path` exists), fsync of the
///   directory;
/// - the temporary file is removed on every error.
pub fn write_atomic(path: &Path, contents: &[u8], replace: bool) -> Result<(), Errno> {
    let name = match path.file_name() {
        Some(n) if n != "." && n != ".." => n,
        _ => return Err(Errno::ISDIR),
    };
    let dir_path = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = open_dir_nofollow(dir_path)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o644);
    // A name of its own per process and try; one left by a crash is never
    // reused (EXCL), the next number is.
    let mut tmp = None;
    for n in 0..100u32 {
        let mut t = std::ffi::OsString::from(".");
        t.push(name);
        t.push(format!(".tmp{}.{n}", std::process::id()));
        match rustix::fs::openat(&dir, t.as_os_str(), flags, mode) {
            Ok(fd) => {
                tmp = Some((t, fd));
                break;
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let Some((tmp, fd)) = tmp else { return Err(Errno::EXIST) };
    let result = (|| -> Result<(), Errno> {
        let mut f = std::fs::File::from(fd);
        f.write_all(contents)?;
        f.sync_all()?;
        drop(f);
        if replace {
            rustix::fs::renameat(&dir, tmp.as_os_str(), &dir, name)?;
        } else {
            rustix::fs::renameat_with(&dir, tmp.as_os_str(), &dir, name, RenameFlags::NOREPLACE)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = rustix::fs::unlinkat(&dir, tmp.as_os_str(), AtFlags::empty());
        return Err(e);
    }
    Ok(rustix::fs::fsync(&dir)?)
}

/// The locks [`Op::Lock`] took, by path: each is held as long as its
/// descriptor is open (and so at most until the process ends; the
/// descriptors are close-on-exec).
static HELD: std::sync::Mutex<Vec<(std::path::PathBuf, OwnedFd)>> = std::sync::Mutex::new(Vec::new());

/// How often a held lock is tried again.
const LOCK_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// [`Op::Lock`]: `flock(LOCK_EX|LOCK_NB)` on `path` (a directory or a
/// file, opened without following a symlink), tried again until `wait` has
/// passed (then `EAGAIN`).
fn lock(path: &Path, wait: std::time::Duration) -> Result<(), Errno> {
    use rustix::fs::FlockOperation;
    let mut held = HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if held.iter().any(|(p, _)| p == path) {
        return Ok(());
    }
    let fd = open_mount_point(path)?;
    // flock needs a real descriptor, not an O_PATH one.
    let fd = rustix::fs::openat(&fd, ".", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .or_else(|_| rustix::fs::open(fd_path(&fd, path), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()))?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR) => {
                if std::time::Instant::now() >= deadline {
                    return Err(Errno::AGAIN);
                }
                std::thread::sleep(LOCK_POLL);
            }
            Err(e) => return Err(e.into()),
        }
    }
    held.push((path.to_path_buf(), fd));
    Ok(())
}

/// [`Op::Unlock`].
fn unlock(path: &Path) {
    let mut held = HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    held.retain(|(p, _)| p != path);
}

/// [`Op::DetachMount`]: the mount at `target` (reached without a symlink)
/// is detached only when it is mount `mount_id`.
fn detach_mount(target: &Path, mount_id: u64) -> Result<(), Errno> {
    let fd = open_mount_point(target)?;
    let x = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
    if !StatxFlags::from_bits_retain(x.stx_mask).contains(StatxFlags::MNT_ID) {
        return Err(Errno::NOSYS);
    }
    if x.stx_mnt_id != mount_id {
        return Err(Errno::STALE);
    }
    Ok(rustix::mount::unmount(fd_path(&fd, target), UnmountFlags::DETACH)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO where an entry's kernel or initramfs should be: refused at
    /// once (opened non-blocking), never waited on.
    #[test]
    fn a_kernel_that_is_a_fifo_is_refused_without_blocking() {
        let t = rootstock_core::testutil::TempDir::new();
        let fifo = t.path().join("vmlinuz");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, 0o644.into(), 0).unwrap();
        assert_eq!(open_regular(&fifo).err(), Some(Errno::INVAL));
        assert_eq!(kernel_file(&fifo).err(), Some(Errno::INVAL));
        std::fs::write(t.path().join("file"), b"x").unwrap();
        assert!(open_regular(&t.path().join("file")).is_ok());
        // The initramfs a FIFO: refused before the syscall.
        let k = KexecImage {
            kernel: t.path().join("file"),
            initrd: Some(fifo),
            cmdline: String::new(),
            carry: None,
        };
        assert_eq!(kexec_file_load(&k).err(), Some(Errno::INVAL));
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let t = rootstock_core::testutil::TempDir::new();
        let p = t.path().join("state");
        write_atomic(&p, b"one\n", true).unwrap();
        write_atomic(&p, b"two\n", true).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1, "no temporary left");
        // No-replace: the file stays, and so does no temporary.
        assert_eq!(write_atomic(&p, b"three\n", false), Err(Errno::EXIST));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1, "no temporary left");
    }

    /// The directory is never created, nor reached through a symlink; a
    /// failed rename leaves no temporary file.
    #[test]
    fn atomic_write_creates_no_directory_follows_no_symlink_and_cleans_up() {
        let t = rootstock_core::testutil::TempDir::new();
        let (real, link) = (t.path().join("real"), t.path().join("link"));
        std::fs::create_dir_all(real.join("dir/sub")).unwrap();
        std::fs::write(real.join("dir/sub/x"), "").unwrap();
        std::os::unix::fs::symlink("real", &link).unwrap();
        assert_eq!(write_atomic(&t.path().join("a/b/state"), b"x", true), Err(Errno::NOENT));
        assert!(!t.path().join("a").exists(), "no directory made");
        assert_eq!(write_atomic(&link.join("state"), b"x", true), Err(Errno::LOOP), "a symlinked directory");
        assert!(!real.join("state").exists());
        // A symlink as the name itself is replaced, never followed.
        std::os::unix::fs::symlink("dir/sub/x", real.join("state")).unwrap();
        write_atomic(&real.join("state"), b"new", true).unwrap();
        assert_eq!(std::fs::read_to_string(real.join("dir/sub/x")).unwrap(), "");
        assert_eq!(std::fs::read_to_string(real.join("state")).unwrap(), "new");
        // Renaming over a non-empty directory fails: the temporary goes.
        assert!(write_atomic(&real.join("dir"), b"x", true).is_err());
        let mut names: Vec<String> = std::fs::read_dir(&real)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dir", "state"]);
        assert_eq!(write_atomic(&real.join(".."), b"x", true), Err(Errno::ISDIR));
    }

    #[test]
    fn a_symlink_replaces_what_is_there_and_is_never_made_through_a_symlink() {
        let t = rootstock_core::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("run/systemd")).unwrap();
        std::os::unix::fs::symlink("run", t.path().join("link")).unwrap();
        let mut l = Linux;
        let link = |dir: &str, target: &str| Op::Symlink {
            path: t.path().join(dir).join("volatile-root"),
            target: std::path::PathBuf::from(target),
        };
        let path = t.path().join("run/systemd/volatile-root");
        l.execute(&link("run/systemd", "/dev/block/254:2")).unwrap();
        assert_eq!(std::fs::read_link(&path).unwrap(), Path::new("/dev/block/254:2"));
        // What a previous boot (or a failed attempt) left is replaced.
        std::fs::write(path.with_file_name(".volatile-root.tmp"), "left over").unwrap();
        l.execute(&link("run/systemd", "/dev/block/7:0")).unwrap();
        assert_eq!(std::fs::read_link(&path).unwrap(), Path::new("/dev/block/7:0"));
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary left");
        assert_eq!(l.execute(&link("link/systemd", "/x")), Err(Errno::LOOP));
        assert_eq!(std::fs::read_link(&path).unwrap(), Path::new("/dev/block/7:0"));
    }

    #[test]
    fn mkdir_never_goes_through_a_symlink() {
        let t = rootstock_core::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real", t.path().join("link")).unwrap();
        let mut l = Linux;
        let mkdir = |rel: &str| Op::Mkdir { path: t.path().join(rel) };
        assert_eq!(l.execute(&mkdir("link/upper")), Err(Errno::LOOP));
        assert_eq!(l.execute(&mkdir("link")), Err(Errno::LOOP));
        assert!(!t.path().join("real/upper").exists());
        l.execute(&mkdir("real/a/b")).unwrap();
        l.execute(&mkdir("real/a/b")).unwrap();
        assert!(t.path().join("real/a/b").is_dir());
        std::fs::write(t.path().join("file"), "").unwrap();
        assert_eq!(l.execute(&mkdir("file/x")), Err(Errno::NOTDIR));
    }

    #[test]
    fn a_lock_waits_a_bounded_time_then_says_eagain() {
        use rustix::fs::FlockOperation;
        let t = rootstock_core::testutil::TempDir::new();
        let dir = t.path().join("d");
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink("d", t.path().join("link")).unwrap();
        let mut l = Linux;
        let wait = std::time::Duration::from_millis(100);
        let lock = |p: &Path| Op::Lock { path: p.to_path_buf(), wait };
        // Another open file description holds it (as another process would).
        let other = rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        rustix::fs::flock(&other, FlockOperation::LockExclusive).unwrap();
        let start = std::time::Instant::now();
        assert_eq!(l.execute(&lock(&dir)), Err(Errno::AGAIN));
        assert!(start.elapsed() >= wait, "waited {:?}", start.elapsed());
        drop(other);
        l.execute(&lock(&dir)).unwrap();
        l.execute(&lock(&dir)).unwrap(); // held already: at once
        let other = rustix::fs::open(&dir, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert!(rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive).is_err(), "held");
        l.execute(&Op::Unlock { path: dir.clone() }).unwrap();
        rustix::fs::flock(&other, FlockOperation::NonBlockingLockExclusive).unwrap();
        assert_eq!(l.execute(&lock(&t.path().join("link"))), Err(Errno::LOOP));
    }

    #[test]
    fn a_bind_never_goes_through_a_symlink_source_or_target() {
        let t = rootstock_core::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("dir")).unwrap();
        std::os::unix::fs::symlink("/", t.path().join("link")).unwrap();
        let mut l = Linux;
        let bind = |s: &str, d: &str| Op::Bind { source: t.path().join(s), target: t.path().join(d) };
        // Refused before any mount is made: no privileges or namespace needed.
        assert_eq!(l.execute(&bind("link", "dir")), Err(Errno::LOOP), "symlinked source");
        assert_eq!(l.execute(&bind("dir", "link")), Err(Errno::LOOP), "symlinked target");
        assert_eq!(l.execute(&bind("gone", "dir")), Err(Errno::NOENT));
    }

    /// A symlink anywhere on the way, not only as the last component: a
    /// directory of the physical root swapped for a symlink between the
    /// checks and the mount cannot redirect any mount call.
    #[test]
    fn no_mount_call_goes_through_a_symlink_on_the_way() {
        let t = rootstock_core::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("real/sub")).unwrap();
        std::os::unix::fs::symlink("real", t.path().join("link")).unwrap();
        let (ok, via) = (t.path().join("real/sub"), t.path().join("link/sub"));
        let mut l = Linux;
        let ops = [
            Op::Bind { source: via.clone(), target: ok.clone() },
            Op::Bind { source: ok.clone(), target: via.clone() },
            Op::Remount { target: via.clone(), bind: true, read_only: true },
            Op::MakeRprivate { target: via.clone() },
            Op::Detach { target: via.clone() },
            Op::Overlay { target: ok.clone(), lower: via.clone(), upper: ok.clone(), work: ok.clone() },
            Op::Overlay { target: via.clone(), lower: ok.clone(), upper: ok.clone(), work: ok.clone() },
        ];
        // Refused before any mount is made: no privileges or namespace needed.
        for op in &ops {
            assert_eq!(l.execute(op), Err(Errno::LOOP), "{op}");
        }
    }

    /// The walk for kernels without openat2 agrees with openat2.
    #[test]
    fn the_component_walk_refuses_what_openat2_refuses() {
        let t = rootstock_core::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("real/sub")).unwrap();
        std::os::unix::fs::symlink("real", t.path().join("link")).unwrap();
        std::os::unix::fs::symlink("sub", t.path().join("real/last")).unwrap();
        for (rel, want) in [
            ("real/sub", Ok(())),
            ("real/./sub", Ok(())),
            ("link/sub", Err(Errno::LOOP)),
            ("real/last", Err(Errno::LOOP)),
            ("real/gone", Err(Errno::NOENT)),
        ] {
            let p = t.path().join(rel);
            assert_eq!(open_walk(&p).map(drop), want, "walk {rel}");
            assert_eq!(open_mount_point(&p).map(drop), want, "openat2 {rel}");
        }
        let fd = open_walk(&t.path().join("real/sub")).unwrap();
        let direct = rustix::fs::stat(t.path().join("real/sub")).unwrap();
        let walked = rustix::fs::fstat(&fd).unwrap();
        assert_eq!((walked.st_dev, walked.st_ino), (direct.st_dev, direct.st_ino));
    }

    #[test]
    fn marker_operations_change_one_entry_never_through_a_symlink() {
        let t = rootstock_core::testutil::TempDir::new();
        let (real, link) = (t.path().join("real"), t.path().join("link"));
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("entry.conf"), "keep").unwrap();
        std::os::unix::fs::symlink("real", &link).unwrap();
        let mut l = Linux;
        let unlink = |dir: &Path, name: &str| Op::Unlink { dir: dir.to_path_buf(), name: name.into() };
        // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR.
        assert_eq!(l.execute(&unlink(&link, "entry.conf")), Err(Errno::NOTDIR), "a symlinked directory");
        for name in ["../real/entry.conf", "a/b", "..", ".", ""] {
            assert_eq!(l.execute(&unlink(t.path(), name)), Err(Errno::INVAL), "{name:?}");
        }
        let create = Op::CreateExclusive { dir: link.clone(), name: "x".into() };
        assert_eq!(l.execute(&create), Err(Errno::NOTDIR));
        let rename =
            Op::RenameNoReplace { dir: real.clone(), from: "entry.conf".into(), to: "../out".into() };
        assert_eq!(l.execute(&rename), Err(Errno::INVAL));
        assert_eq!(std::fs::read_to_string(real.join("entry.conf")).unwrap(), "keep");
    }

    #[test]
    fn file_operations_on_a_directory() {
        let t = rootstock_core::testutil::TempDir::new();
        let dir = t.path().join("m");
        let mut l = Linux;
        let run = |l: &mut Linux, op: Op| l.execute(&op);
        run(&mut l, Op::Mkdir { path: dir.join("sub") }).unwrap();
        run(&mut l, Op::CreateExclusive { dir: dir.clone(), name: "a".into() }).unwrap();
        // O_EXCL and RENAME_NOREPLACE never replace.
        assert_eq!(
            run(&mut l, Op::CreateExclusive { dir: dir.clone(), name: "a".into() }),
            Err(Errno::EXIST)
        );
        run(&mut l, Op::CreateExclusive { dir: dir.clone(), name: "b".into() }).unwrap();
        let rename =
            |from: &str, to: &str| Op::RenameNoReplace { dir: dir.clone(), from: from.into(), to: to.into() };
        assert_eq!(run(&mut l, rename("a", "b")), Err(Errno::EXIST));
        run(&mut l, rename("a", "c")).unwrap();
        run(&mut l, Op::Unlink { dir: dir.clone(), name: "b".into() }).unwrap();
        run(&mut l, Op::RemoveDir { dir: dir.clone(), name: "sub".into() }).unwrap();
        run(&mut l, Op::FsyncDir { path: dir.clone() }).unwrap();
        run(&mut l, Op::SyncFs { path: dir.clone() }).unwrap();
        let names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["c"]);
        assert_eq!(std::fs::metadata(dir.join("c")).unwrap().len(), 0);
        assert_eq!(run(&mut l, Op::Unlink { dir: dir.clone(), name: "gone".into() }), Err(Errno::NOENT));
        // A kernel file is written in place, never created.
        std::fs::write(dir.join("knob"), "no\n").unwrap();
        run(&mut l, Op::WriteKnob { path: dir.join("knob"), contents: "on\n".into() }).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("knob")).unwrap(), "on\n");
        assert_eq!(
            run(&mut l, Op::WriteKnob { path: dir.join("none"), contents: "x".into() }),
            Err(Errno::NOENT)
        );
        assert_eq!(l.query(&Query::ReadOnly { path: dir.clone() }), Ok(false));
        assert_eq!(l.query(&Query::RamFs { path: dir.join("none") }), Err(Errno::NOENT));
        assert_eq!(l.query(&Query::RamFs { path: "/proc".into() }), Ok(false));
    }

    /// Device and inode of `path`, for [`Op::EmptyRamfs`].
    fn identity(path: &Path) -> (u64, u64) {
        let st = rustix::fs::lstat(path).unwrap();
        (st.st_dev, st.st_ino)
    }

    fn empty(root: &Path, (dev, ino): (u64, u64)) -> Result<(), Errno> {
        Linux.execute(&Op::EmptyRamfs { root: root.to_path_buf(), dev, ino })
    }

    /// Every path below `dir`, relative to it, sorted; never through a symlink.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                    walk(base, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    /// Refused before anything is deleted: a root on a disk, a directory
    /// other than the one named by device and inode, a symlink.
    #[test]
    fn emptying_refuses_a_disk_another_directory_and_a_symlink() {
        let t = rootstock_core::testutil::TempDir::new();
        let ram = |p: &Path| is_ram_fs(rustix::fs::statfs(p).unwrap().f_type);
        let dir = t.path().join("root");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/file"), "x").unwrap();
        if ram(t.path()) {
            eprintln!("{} is a tmpfs: not checking that a disk is refused", t.path().display());
        } else {
            assert_eq!(empty(&dir, identity(&dir)), Err(Errno::PERM), "not a ramfs or tmpfs");
        }
        let (dev, ino) = identity(&dir);
        let stale = Err(Errno::STALE);
        assert_eq!(empty(&dir, (dev, identity(&dir.join("sub")).1)), stale, "another inode");
        assert_eq!(empty(&dir, (dev + 1, ino)), stale, "another device");
        std::os::unix::fs::symlink(&dir, t.path().join("link")).unwrap();
        assert_eq!(empty(&t.path().join("link"), (dev, ino)), Err(Errno::NOTDIR), "a symlink to it");
        assert_eq!(tree(&dir), ["sub", "sub/file"]);
    }

    /// Runs the ignored test `name` of this binary in a private mount
    /// namespace (`unshare -m`, as root): it mounts what it needs there.
    /// False (skipped) when not root, unless ROOTSTOCK_REQUIRE_ROOT_TESTS.
    fn in_private_mount_namespace(name: &str) -> bool {
        if !rustix::process::geteuid().is_root() {
            assert!(std::env::var_os("ROOTSTOCK_REQUIRE_ROOT_TESTS").is_none(), "needs root");
            eprintln!("skipping {name}: needs root for a mount namespace");
            return false;
        }
        let out = std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private"])
            .arg(std::env::current_exe().unwrap())
            .args([name, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(IN_NAMESPACE, "1")
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}\n{stderr}");
        true
    }

    /// Set for the tests [`in_private_mount_namespace`] runs.
    const IN_NAMESPACE: &str = "ROOTSTOCK_SYS_TEST_IN_MOUNT_NAMESPACE";

    #[test]
    fn emptying_a_tmpfs_root_deletes_all_of_it_and_nothing_else() {
        in_private_mount_namespace("tests::emptying_in_a_mount_namespace");
    }

    /// A tmpfs whose directory `fs/root` is bind-mounted as the root, and
    /// in it: files and directories, symlinks to what is outside, a tmpfs
    /// of its own, and a bind mount of `fs/kept` (the same filesystem, the
    /// same device: only the mount tells it apart).
    #[test]
    #[ignore = "mounts: run by emptying_a_tmpfs_root_deletes_all_of_it_and_nothing_else in a private mount namespace"]
    fn emptying_in_a_mount_namespace() {
        if std::env::var_os(IN_NAMESPACE).is_none() {
            eprintln!("not in a private mount namespace: not mounting anything");
            return;
        }
        let t = rootstock_core::testutil::TempDir::new();
        let (fs, root, outside) = (t.path().join("fs"), t.path().join("root"), t.path().join("outside"));
        for d in [&fs, &root, &outside] {
            std::fs::create_dir_all(d).unwrap();
        }
        let tmpfs = |at: &Path| {
            rustix::mount::mount("tmpfs", at, "tmpfs", MountFlags::empty(), c"mode=0755").unwrap();
        };
        tmpfs(&fs);
        for d in ["root/lib/modules/k", "root/mnt", "root/bound", "root/empty", "kept"] {
            std::fs::create_dir_all(fs.join(d)).unwrap();
        }
        for f in ["root/init", "root/lib/modules/k/a.ko", "kept/file"] {
            std::fs::write(fs.join(f), "x").unwrap();
        }
        std::fs::write(outside.join("file"), "x").unwrap();
        rustix::mount::mount_bind(fs.join("root"), &root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dir-link")).unwrap();
        std::os::unix::fs::symlink(outside.join("file"), root.join("lib/file-link")).unwrap();
        tmpfs(&root.join("mnt"));
        std::fs::write(root.join("mnt/file"), "x").unwrap();
        rustix::mount::mount_bind(fs.join("kept"), root.join("bound")).unwrap();
        // Before the directory goes: the mounts, the ones below `root` with it.
        struct Detach(Vec<std::path::PathBuf>);
        impl Drop for Detach {
            fn drop(&mut self) {
                for p in &self.0 {
                    let _ = rustix::mount::unmount(p, UnmountFlags::DETACH);
                }
            }
        }
        let _detach = Detach(vec![root.clone(), fs.clone()]);

        assert_eq!(empty(&root, identity(&root)), Ok(()));
        // The mount points stay, with what is in them; the rest is gone.
        assert_eq!(tree(&root), ["bound", "bound/file", "mnt", "mnt/file"]);
        assert_eq!(tree(&outside), ["file"], "nothing through a symlink");
        assert_eq!(tree(&fs.join("kept")), ["file"]);
    }

    #[test]
    fn marker_changes_on_disk() {
        use rootstock_core::counting::{Change, MarkerDir};
        let t = rootstock_core::testutil::TempDir::new();
        let d = MarkerDir::new(t.path());
        let apply = |c: Change| d.apply_writable(&mut Linux, t.path(), &[c]);
        assert_eq!(d.list().unwrap(), Vec::<String>::new());
        apply(Change::Create { name: "os-aaaa.0+02-01".into() }).unwrap();
        apply(Change::Rename { from: "os-aaaa.0+02-01".into(), to: "os-aaaa.0+01-02".into() }).unwrap();
        assert_eq!(d.list().unwrap(), vec!["os-aaaa.0+01-02".to_string()]);
        // NOREPLACE / EXCL: a change that would overwrite fails, naming the path.
        let err = apply(Change::Create { name: "os-aaaa.0+01-02".into() }).unwrap_err();
        assert_eq!((err.step, err.errno), ("create", Errno::EXIST));
        apply(Change::Create { name: "os-aaaa.0".into() }).unwrap();
        let err = apply(Change::Rename { from: "os-aaaa.0+01-02".into(), to: "os-aaaa.0".into() })
            .unwrap_err()
            .to_string();
        assert!(err.contains("rename") && err.contains("EEXIST"), "{err}");
        apply(Change::Remove { name: "os-aaaa.0+01-02".into() }).unwrap();
        assert_eq!(d.list().unwrap(), vec!["os-aaaa.0".to_string()]);
    }
}
