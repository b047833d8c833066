//! The syscall layer: the real implementation of rootstock-core's seam
//! ([`rootstock_core::seam::System`]). Everything above it decides; this
//! executes. The only crate with `unsafe`, each block with a `// SAFETY:`.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use rootstock_core::cpio;
use rootstock_core::errno::Errno;
use rootstock_core::plan::Op;
use rootstock_core::seam::{KexecImage, System};
use rootstock_core::state::KEXEC_STATE;

/// The real thing.
pub struct Linux;

/// `KEXEC_FILE_NO_INITRAMFS` from linux/kexec.h.
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 4;

/// `kexec_file_load(2)`: rustix has no wrapper, so this is the one place
/// with `unsafe`.
#[allow(unsafe_code)]
fn kexec_file_load(k: &KexecImage) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    let kernel = std::fs::File::open(&k.kernel)?;
    let initrd = match (&k.initrd, &k.carry) {
        (Some(path), Some(state)) => match initrd_carrying(path, state) {
            Ok(f) => Some(f),
            // The state is a courtesy; the kexec is what matters.
            Err(e) => {
                log::warn!("cannot add the boot state to {}: {e}: loading it as it is", path.display());
                Some(std::fs::File::open(path)?)
            }
        },
        (Some(path), None) => Some(std::fs::File::open(path)?),
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
    let r = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd_fd,
            bytes.len() as libc::c_ulong,
            cmdline.as_ptr(),
            flags,
        )
    };
    if r < 0 { Err(Errno::from_io(&std::io::Error::last_os_error())) } else { Ok(()) }
}

/// The initramfs at `path` with `state` appended as a file of its own
/// archive, in an anonymous memory file (the initramfs on /boot stays as it
/// is).
fn initrd_carrying(path: &Path, state: &str) -> Result<std::fs::File, Errno> {
    use rustix::fs::{MemfdFlags, memfd_create};
    let entry = cpio::Entry::file(KEXEC_STATE.trim_start_matches('/'), 0o644, state.as_bytes().to_vec());
    let archive = cpio::write_newc(&[entry]).map_err(|_| Errno::INVAL)?;
    // Not executable (Linux >= 6.3 warns on the console otherwise); older
    // kernels refuse the flag with EINVAL.
    let fd = memfd_create("rootstock-initrd", MemfdFlags::CLOEXEC | MemfdFlags::NOEXEC_SEAL)
        .or_else(|_| memfd_create("rootstock-initrd", MemfdFlags::CLOEXEC))?;
    let mut f = std::fs::File::from(fd);
    let len = std::io::copy(&mut std::fs::File::open(path)?, &mut f)?;
    f.write_all(&cpio::separator(len))?;
    f.write_all(&archive)?;
    Ok(f)
}

/// Run `shell` as an interactive login shell (`-sh`). When the console's own
/// terminal is known (the last name in `/sys/class/tty/console/active`,
/// e.g. `ttyS0`), the shell runs on it as a session leader with it as the
/// controlling terminal, so job control and Ctrl-C work (`/dev/console`
/// cannot be one); otherwise on the inherited descriptors.
#[allow(unsafe_code)]
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

/// Boot the kernel loaded by `kexec_load`. Returns only on failure.
pub fn reboot_into_kexec() -> Errno {
    rustix::fs::sync();
    match rustix::system::reboot(rustix::system::RebootCommand::Kexec) {
        // reboot(2) does not return when it boots the loaded kernel.
        Ok(()) => Errno::IO,
        Err(e) => e.into(),
    }
}

impl System for Linux {
    fn execute(&mut self, op: &Op) -> Result<(), Errno> {
        match op {
            Op::MakeRprivate { target } => rustix::mount::mount_change(
                target,
                MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
            )?,
            Op::Mkdir { path } => std::fs::DirBuilder::new().recursive(true).create(path)?,
            Op::Bind { source, target } => rustix::mount::mount_bind(source, target)?,
            Op::RemountBindReadOnly { target } => {
                rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")?
            }
            Op::Overlay { target, lower, upper, work } => {
                let mut data = b"lowerdir=".to_vec();
                data.extend_from_slice(lower.as_os_str().as_bytes());
                data.extend_from_slice(b",upperdir=");
                data.extend_from_slice(upper.as_os_str().as_bytes());
                data.extend_from_slice(b",workdir=");
                data.extend_from_slice(work.as_os_str().as_bytes());
                // A NUL inside a path cannot be passed to the kernel.
                let data = CString::new(data).map_err(|_| Errno::INVAL)?;
                rustix::mount::mount("overlay", target, "overlay", MountFlags::empty(), data.as_c_str())?
            }
            Op::Move { source, target } => rustix::mount::mount_move(source, target)?,
            Op::WriteFile { path, contents } => write_atomic(path, contents.as_bytes())?,
        }
        Ok(())
    }

    fn detach(&mut self, target: &Path) -> Result<(), Errno> {
        rustix::mount::unmount(target, UnmountFlags::DETACH)?;
        Ok(())
    }

    fn kexec_load(&mut self, k: &KexecImage) -> Result<(), Errno> {
        kexec_file_load(k)
    }
}

/// Write `path` so that a reader sees the old contents or the new, never a
/// part: a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.as_os_str().to_os_string();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = Path::new(&tmp_name);
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let t = rootstock_core::testutil::TempDir::new();
        let p = t.path().join("a/b/state");
        write_atomic(&p, b"one\n").unwrap();
        write_atomic(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        assert_eq!(std::fs::read_dir(t.path().join("a/b")).unwrap().count(), 1, "no temporary left");
    }
}
