//! A scenario: a disk image of the test OS booted any number of times with
//! any initramfs and command line; and whether this machine can run one.

use crate::arch::Arch;
use crate::kernel::{Kernel, debian_kernel_for};
use crate::qemu::{Booted, QemuBoot, boot};
use crate::rootstock::{RootstockTimings, rootstock_initramfs};
use crate::sysroot::{BootEntry, DiskSpec, IMAGE_MB, Sysroot, TestOs, build_sysroot};
use crate::util::{Result, cache_dir, run};
use std::os::unix::fs::MetadataExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Whether this process can run QEMU scenarios (root, for ostree admin
/// deploy; QEMU installed). Prints why not; with
/// `ROOTSTOCK_REQUIRE_QEMU_TESTS` set, panics instead.
pub fn can_run() -> bool {
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    let qemu = std::process::Command::new("qemu-system-x86_64").arg("--version").output().is_ok();
    let why = match (root, qemu) {
        (true, true) => return true,
        (false, _) => "needs root (ostree admin deploy)",
        (true, false) => "qemu-system-x86_64 not installed (qemu-tests/run installs it)",
    };
    assert!(std::env::var_os("ROOTSTOCK_REQUIRE_QEMU_TESTS").is_none(), "QEMU tests required but {why}");
    eprintln!("skipping QEMU test: {why}");
    false
}

/// [`can_run`], and this machine can boot `arch`'s scenarios
/// ([`Arch::missing`]). Prints why not; with `ROOTSTOCK_REQUIRE_QEMU_TESTS`
/// set, panics instead.
pub fn can_run_on(arch: Arch) -> bool {
    if !can_run() {
        return false;
    }
    let Some(why) = arch.missing() else { return true };
    assert!(
        std::env::var_os("ROOTSTOCK_REQUIRE_QEMU_TESTS").is_none(),
        "{} QEMU tests required but {why}",
        arch.deb()
    );
    eprintln!("skipping {} QEMU test: {why}", arch.deb());
    false
}

/// A disk image of the test OS in `<cache>/work/NAME/` (made fresh), booted
/// any number of times with any initramfs and command line. Boots of one
/// image see each other's writes (markers in /var and /etc), unless
/// `snapshot` is set.
pub struct Scenario {
    pub name: String,
    pub work: PathBuf,
    pub kernel: Kernel,
    /// The sysroot's BLS entries, index 0 = default, 1 = rollback.
    pub entries: Vec<BootEntry>,
    pub image: PathBuf,
    /// Every boot sees the image as it is now (QEMU's `snapshot=on`): for a
    /// fixture shared by several tests, each booting it in its own story.
    pub snapshot: bool,
    boots: AtomicUsize,
}

/// A fixture made once per test binary and shared by the tests that ask
/// for it (a `static`), as `Fixture::new()`. If making it panics, every test
/// that asks fails with that message instead of making it again.
pub struct Fixture<T> {
    cell: OnceLock<std::result::Result<T, String>>,
}

impl<T> Default for Fixture<T> {
    fn default() -> Self {
        Fixture::new()
    }
}

impl<T> Fixture<T> {
    pub const fn new() -> Fixture<T> {
        Fixture { cell: OnceLock::new() }
    }

    /// The fixture, made by `make` if no test made it yet.
    pub fn get(&self, make: impl FnOnce() -> T) -> &T {
        let made = self.cell.get_or_init(|| {
            std::panic::catch_unwind(AssertUnwindSafe(make)).map_err(|e| {
                let text = e.downcast_ref::<String>().cloned();
                text.or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
            })
        });
        match made {
            Ok(t) => t,
            Err(e) => panic!("the shared fixture failed: {e}"),
        }
    }
}

impl Scenario {
    pub(crate) fn from_parts(
        name: &str,
        work: PathBuf,
        kernel: Kernel,
        entries: Vec<BootEntry>,
        image: PathBuf,
    ) -> Scenario {
        Scenario {
            name: name.into(),
            work,
            kernel,
            entries,
            image,
            snapshot: false,
            boots: AtomicUsize::new(0),
        }
    }

    /// A scenario of its own on a copy of this one's disk image (in
    /// `<cache>/work/NAME/`), whose boots keep their writes: for a story
    /// that boots a shared fixture several times.
    pub fn copy(&self, name: &str) -> Result<Scenario> {
        let work = cache_dir().join("work").join(name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let image = work.join("disk.raw");
        run(Command::new("cp").arg("--sparse=always").arg(&self.image).arg(&image))?;
        Ok(Scenario::from_parts(name, work, self.kernel.clone(), self.entries.clone(), image))
    }

    pub fn new(name: &str, os: &TestOs) -> Result<Scenario> {
        let kernel = debian_kernel_for(os.arch)?;
        let work = cache_dir().join("work").join(name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let sysroot = build_sysroot(&kernel, os)?;
        let image = work.join("disk.raw");
        sysroot.disk_image(&image, IMAGE_MB)?;
        let entries = sysroot.entries.clone();
        Ok(Scenario::from_parts(name, work, kernel, entries, image))
    }

    /// Like [`Scenario::new`], with a hook that may change the sysroot
    /// (more deploy rounds, a broken deployment) before the disk image is
    /// made as `disk` says. The entries are read after the hook.
    pub fn custom(
        name: &str,
        os: &TestOs,
        prepare: impl FnOnce(&mut Sysroot) -> Result<()>,
        disk: &DiskSpec,
    ) -> Result<Scenario> {
        let kernel = debian_kernel_for(os.arch)?;
        let work = cache_dir().join("work").join(name);
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let mut sysroot = build_sysroot(&kernel, os)?;
        prepare(&mut sysroot)?;
        let image = work.join("disk.raw");
        sysroot.make_disk(&image, disk)?;
        let entries = sysroot.entries.clone();
        Ok(Scenario::from_parts(name, work, kernel, entries, image))
    }

    /// The console arguments ([`CONSOLE_ARGS`](crate::CONSOLE_ARGS) on x86_64) followed by the
    /// BLS options of entry `index`.
    pub fn cmdline(&self, index: usize) -> String {
        format!("{} {}", self.kernel.arch.console_args(), self.entries[index].options)
    }

    /// The QEMU run for the next boot of this image (log `boot-N.log` in the
    /// work directory), to adjust before [`Scenario::run`].
    pub fn qemu(&self, initrd: Option<&Path>, append: &str) -> QemuBoot {
        let n = self.boots.fetch_add(1, Ordering::Relaxed) + 1;
        let log = self.work.join(format!("boot-{n}.log"));
        let q = QemuBoot::new(&self.kernel.vmlinuz(), initrd, append, &self.image, &log);
        QemuBoot { arch: self.kernel.arch, snapshot: self.snapshot, ..q }
    }

    /// [`boot`] plus: keep the log (`ROOTSTOCK_QEMU_KEEP`), print the timings.
    pub fn run(&self, qemu: &QemuBoot) -> Result<Booted> {
        let result = boot(qemu);
        if let Some(dir) = std::env::var_os("ROOTSTOCK_QEMU_KEEP") {
            let name =
                format!("{}-{}", self.name, qemu.log.file_name().unwrap_or_default().to_string_lossy());
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&qemu.log, Path::new(&dir).join(name));
        }
        if let Ok(b) = &result {
            eprintln!("[{}] {}: {}", self.name, qemu.log.display(), b.timings);
        }
        result
    }

    /// Boot with `initrd` and the whole kernel command line `append`.
    pub fn boot(&self, initrd: Option<&Path>, append: &str) -> Result<Booted> {
        self.run(&self.qemu(initrd, append))
    }

    /// Boot through rootstock's own initramfs with module set `set`, made
    /// for this scenario's kernel (and architecture); print rootstock's
    /// phases. Panics, naming the console log, unless rootstock switched
    /// root and the kernel did not panic.
    pub fn boot_rootstock(&self, set: &str, append: &str) -> Result<Booted> {
        let initrd = rootstock_initramfs(&self.kernel, set)?;
        let b = self.boot(Some(&initrd), append)?;
        eprintln!("[{}] rootstock: {}", self.name, RootstockTimings::from_console(&b.console));
        let log = b.console.log.display();
        assert!(
            b.console.find("rootstock: switching root").is_some(),
            "no `rootstock: switching root`; console {log}"
        );
        assert!(b.console.find("Kernel panic").is_none(), "kernel panic; console {log}");
        Ok(b)
    }
}
