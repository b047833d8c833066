//! Initramfs images made by the host's dracut for the cached kernel,
//! cached in `<cache>/initramfs/` by a key over everything that shapes them.

use crate::kernel::Kernel;
use crate::util::{Result, cache_dir, fnv1a, io, lock, run};
use std::path::PathBuf;
use std::process::Command;

/// What to put in a dracut image. The host's dracut configuration
/// (/etc/dracut.conf.d, e.g. ostree-boot's) is ignored: only this counts.
#[derive(Clone, Debug, PartialEq)]
pub struct DracutSpec {
    /// dracut modules (`-m`); dependencies are added by dracut.
    pub modules: Vec<String>,
    /// The exact kernel drivers (`--drivers`; their dependencies follow).
    pub drivers: Vec<String>,
    /// `--compress` argument.
    pub compress: String,
    /// Anything else for the dracut command line.
    pub extra_args: Vec<String>,
}

impl DracutSpec {
    /// The baseline: Debian's dracut 059 with ostree-boot's `ostree` module,
    /// the smallest set that boots the test OS from virtio ext4. These eight
    /// are a closed set: naming fewer pulls the rest back in as dependencies,
    /// except base and rootfs-block, without which there is no sysroot.mount
    /// (emergency shell). `--fscks e2fsck` leaves out the xfs/btrfs/... fsck
    /// tools that `--no-hostonly` adds (12.7 → 11.4 MB).
    pub fn ostree_baseline() -> DracutSpec {
        let words = |s: &str| s.split_whitespace().map(String::from).collect();
        DracutSpec {
            modules: words(
                "systemd systemd-initrd dracut-systemd udev-rules base fs-lib rootfs-block ostree",
            ),
            drivers: words("virtio_pci virtio_blk ext4"),
            compress: "zstd".into(),
            extra_args: words("--fscks e2fsck"),
        }
    }
}

/// The image for `kernel` and `spec`, built on first use. The cache key
/// covers the kernel version, the spec and the versions of the Debian
/// packages that make the image (dracut-core, ostree-boot, systemd, udev).
pub fn dracut_initramfs(kernel: &Kernel, spec: &DracutSpec) -> Result<PathBuf> {
    let packages = run(Command::new("dpkg-query").args([
        "-W",
        "-f=${Package}=${Version} ",
        "dracut-core",
        "ostree-boot",
        "systemd",
        "udev",
    ]))?;
    let key = fnv1a(format!("{}\n{spec:?}\n{packages}", kernel.version).as_bytes());
    let dir = cache_dir().join("initramfs");
    let image = dir.join(format!("dracut-{}-{key:016x}.img", kernel.version));
    let _guard = lock("dracut")?;
    if image.exists() {
        return Ok(image);
    }
    let confdir = dir.join("empty-confdir");
    io(std::fs::create_dir_all(&confdir), "create", &confdir)?;
    let tmp = image.with_extension("tmp");
    let mut cmd = Command::new("dracut");
    cmd.args(["--force", "--quiet", "--no-hostonly", "--no-hostonly-cmdline", "--reproducible"])
        .args(["--no-early-microcode", "--conf", "/dev/null", "--confdir"])
        .arg(&confdir)
        .args(["--kver", &kernel.version, "--kmoddir"])
        .arg(kernel.moddir())
        // dracut wants each list as one space-separated argument
        .args(["-m", &spec.modules.join(" "), "--drivers", &spec.drivers.join(" ")])
        .args(["--compress", &spec.compress])
        .args(&spec.extra_args)
        .arg(&tmp);
    run(&mut cmd)?;
    io(std::fs::rename(&tmp, &image), "rename to", &image)?;
    Ok(image)
}
