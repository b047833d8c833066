//! The compatibility OS: a real Debian trixie (systemd 257 as init, ostree
//! 2025.2's own userspace), deployed by the real `ostree` CLI and booted
//! through rootstock's initramfs.
//!
//! Three cached layers in `<cache>/trixie/`, each rebuilt only when what
//! shapes it changes:
//!
//! 1. `debootstrap-KEY/`: `debootstrap --variant=minbase` of trixie (key: the
//!    debootstrap arguments and mirror). The slow step (minutes, network).
//! 2. `initramfs-KEY.img`: rootstock's initramfs (key: the static binary, the
//!    kernel, the `qemu` module set).
//! 3. `image-KEY/`: the ext4 disk image of a physical root with two
//!    deployments, plus copies of its `/boot/loader/entries` and
//!    `/boot/ostree` for QEMU's `-kernel`/`-initrd` (key: layer 1 and 2, the
//!    recipe in `qemu-tests/trixie/`, the bless unit, this file's recipe
//!    version, the host's ostree).
//!
//! A [`TrixieScenario`] boots a private copy of the image, so boots of one
//! scenario see each other's writes and the cached image stays pristine.
//! The test OS's `testos-report.service` prints the report (see
//! `qemu-tests/trixie/testos-report` for its keys) and powers off.

use crate::kernel::{Kernel, debian_kernel};
use crate::qemu::{Booted, CONSOLE_ARGS, QemuBoot, boot};
use crate::report::kernel_timestamp;
use crate::sysroot::{BootEntry, read_entries};
use crate::util::{Error, Result, cache_dir, err, fnv1a, io, lock, repo_root, run, tmpfs_dir};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Debian suite, and the packages on top of minbase: systemd as init, udev,
/// kmod, D-Bus (logind needs it), ostree's CLI and its boot integration
/// (ostree-system-generator, ostree-remount).
pub const SUITE: &str = "trixie";
pub const INCLUDE: &[&str] = &["systemd-sysv", "udev", "kmod", "dbus", "ostree", "ostree-boot"];
/// The OSTree stateroot, branch and the disk's filesystem label.
pub const STATEROOT: &str = "debian";
pub const BRANCH: &str = "debian/trixie/x86_64";
/// A branch of the image's repository, not deployed: the last version's tree
/// built for [`crate::older_kernel`] (its modules, vmlinuz and rootstock's
/// initramfs), with the version [`OTHER_KERNEL_VERSION`]. The OS deploys it
/// to change kernels (tests/trixie_soft_reboot.rs).
pub const OTHER_KERNEL_BRANCH: &str = "debian/trixie/x86_64-other-kernel";
pub const OTHER_KERNEL_VERSION: &str = "9";
pub const LABEL: &str = "trixieroot";
/// Deployments in the image: versions 1..=N, N (the last deployed) the default.
pub const DEPLOYMENTS: usize = 2;
/// Size of the (sparse) disk image.
pub const DISK_MB: u64 = 2048;
/// Bump when the build steps in this file change the image.
const RECIPE_VERSION: &str = "trixie-image-2";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

fn recipe_dir() -> PathBuf {
    repo_root().join("qemu-tests/trixie")
}

/// The mirror: `$ROOTSTOCK_TRIXIE_MIRROR`, else deb.debian.org.
pub(crate) fn mirror() -> String {
    std::env::var("ROOTSTOCK_TRIXIE_MIRROR").unwrap_or_else(|_| DEFAULT_MIRROR.into())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The debootstrapped trixie tree (layer 1), and how long debootstrap took
/// if it ran now.
pub fn trixie_rootfs() -> Result<(PathBuf, Option<f64>)> {
    let mirror = mirror();
    let args = format!("--variant=minbase --include={} {SUITE} {mirror}", INCLUDE.join(","));
    let dir = cache_dir().join("trixie");
    let rootfs = dir.join(format!("debootstrap-{:016x}", fnv1a(args.as_bytes())));
    let _guard = lock("trixie-debootstrap")?;
    if rootfs.is_dir() {
        return Ok((rootfs, None));
    }
    if Command::new("debootstrap").arg("--version").output().is_err() {
        return err("debootstrap is not installed (apt-get install debootstrap)");
    }
    let tmp = rootfs.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    io(std::fs::create_dir_all(&tmp), "create", &tmp)?;
    let t = Instant::now();
    eprintln!("[trixie] debootstrap {args} (cached in {})", rootfs.display());
    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", &format!("--include={}", INCLUDE.join(",")), SUITE])
        .arg(&tmp)
        .arg(&mirror);
    if let Err(e) = run(&mut cmd) {
        let log = std::fs::read_to_string(tmp.join("debootstrap/debootstrap.log")).unwrap_or_default();
        return err(format!("{e}\ndebootstrap.log:\n{}", crate::util::tail(&log, 30)));
    }
    io(std::fs::rename(&tmp, &rootfs), "rename to", &rootfs)?;
    // Older trees (another recipe) are dead weight: ~300 MB each.
    prune(&dir, "debootstrap-", &rootfs);
    Ok((rootfs, Some(secs(t.elapsed()))))
}

/// Remove `DIR/PREFIX*` except `keep`.
fn prune(dir: &Path, prefix: &str, keep: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p != keep && e.file_name().to_string_lossy().starts_with(prefix) {
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    io(std::fs::read(path), "read", path)
}

/// How long each step of an image build took (seconds).
#[derive(Clone, Debug, Default)]
pub struct BuildTimes {
    /// `None`: the debootstrap tree came from the cache.
    pub debootstrap: Option<f64>,
    pub initramfs: f64,
    /// Copy the tree to the tmpfs and make it OSTree-ready.
    pub tree: f64,
    /// `ostree admin init-fs`, `os-init`, and a commit + deploy per deployment.
    pub ostree: f64,
    pub mkfs: f64,
    pub total: f64,
}

impl fmt::Display for BuildTimes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.debootstrap.map_or("cached".into(), |s| format!("{s:.1} s"));
        write!(
            f,
            "debootstrap {d}, initramfs {:.1} s, tree {:.1} s, ostree commit+deploy {:.1} s, mkfs.ext4 {:.1} s; \
             total {:.1} s",
            self.initramfs, self.tree, self.ostree, self.mkfs, self.total
        )
    }
}

/// The cached image (layer 3).
#[derive(Clone, Debug)]
pub struct TrixieImage {
    pub dir: PathBuf,
    /// The pristine ext4 image (copy it before booting: see [`TrixieScenario`]).
    pub disk: PathBuf,
    /// BLS entries, index 0 = default.
    pub entries: Vec<BootEntry>,
    /// `$stateroot/$csum.$serial` of each deployment, in the same order.
    pub deployments: Vec<String>,
    pub kernel: Kernel,
    /// The kernel release of [`OTHER_KERNEL_BRANCH`]'s commit.
    pub other_kernel: String,
    /// `None` when the image came from the cache.
    pub built: Option<BuildTimes>,
}

impl TrixieImage {
    /// The kernel and initramfs that entry `index` names, as ostree copied
    /// them to /boot (kept next to the image).
    pub fn boot_files(&self, index: usize) -> Result<(PathBuf, PathBuf)> {
        let e = &self.entries[index];
        let boot = self.dir.join("boot");
        let initrd =
            e.initrd.as_ref().ok_or_else(|| Error(format!("BLS entry {index} has no initrd: {e:?}")))?;
        Ok((boot.join(e.linux.trim_start_matches('/')), boot.join(initrd.trim_start_matches('/'))))
    }
}

/// A physical root on the tmpfs; removed (immutable deployments included)
/// when dropped.
struct BuildDir(PathBuf);

impl Drop for BuildDir {
    fn drop(&mut self) {
        let deploy = self.0.join("sysroot/ostree/deploy").join(STATEROOT).join("deploy");
        for d in std::fs::read_dir(deploy).into_iter().flatten().flatten() {
            if d.path().is_dir() {
                let _ = Command::new("chattr").arg("-i").arg(d.path()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deployment ids in `ostree admin status` order: `stateroot/csum.serial`.
pub fn parse_admin_status(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("* ").or_else(|| l.strip_prefix("  "))?;
            let mut w = rest.split_whitespace();
            let (stateroot, id) = (w.next()?, w.next()?);
            let (csum, serial) = id.split_once('.')?;
            let ok = csum.len() == 64
                && csum.bytes().all(|b| b.is_ascii_hexdigit())
                && serial.bytes().all(|b| b.is_ascii_digit());
            ok.then(|| format!("{stateroot}/{id}"))
        })
        .collect()
}

/// The trixie image for `kernel` with the static host tool `bin`, from the
/// cache or built now (debootstrap on first use).
pub fn trixie_image(kernel: &Kernel, bin: &Path) -> Result<TrixieImage> {
    let t = Instant::now();
    let (rootfs, debootstrap) = trixie_rootfs()?;
    let t_initramfs = Instant::now();
    let initramfs = crate::rootstock::rootstock_initramfs(kernel, "qemu")?;
    let other = crate::older_kernel()?;
    let other_initramfs = crate::rootstock::rootstock_initramfs(&other, "qemu")?;
    let initramfs_secs = secs(t_initramfs.elapsed());
    let recipe = recipe_dir();
    let bless = repo_root().join("systemd/rootstock-bless.service");
    let rollback = repo_root().join("systemd/rootstock-rollback.service");
    let mut key = format!(
        "{RECIPE_VERSION}\n{}\n{}\n{}\n{STATEROOT} {BRANCH} {LABEL} {DEPLOYMENTS} {DISK_MB}\n",
        rootfs.display(),
        initramfs.display(),
        other_initramfs.display()
    )
    .into_bytes();
    for f in [
        "ostree-ready.sh",
        "modules.list",
        "testos-report",
        "testos-report.service",
        "testos-soft-reboot",
        "testos-rollback",
        "testos-health",
        "testos-health.service",
        "testos-complete.service",
        "install-kernel.sh",
    ] {
        key.extend(read(&recipe.join(f))?);
    }
    key.extend(read(&bless)?);
    key.extend(read(&rollback)?);
    key.extend(read(bin)?);
    key.extend(run(Command::new("ostree").arg("--version"))?.as_bytes());
    let dir = cache_dir().join("trixie");
    let image_dir = dir.join(format!("image-{:016x}", fnv1a(&key)));
    let _guard = lock("trixie-image")?;
    let load = |built| -> Result<TrixieImage> {
        let list = read(&image_dir.join("deployments"))?;
        Ok(TrixieImage {
            disk: image_dir.join("disk.raw"),
            entries: read_entries(&image_dir)?,
            deployments: String::from_utf8_lossy(&list).lines().map(String::from).collect(),
            kernel: kernel.clone(),
            other_kernel: other.version.clone(),
            dir: image_dir.clone(),
            built,
        })
    };
    if image_dir.join("disk.raw").exists() {
        return load(None);
    }
    let tmp_dir = image_dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp_dir);
    io(std::fs::create_dir_all(&tmp_dir), "create", &tmp_dir)?;

    // The tree, on the tmpfs (ostree admin deploy freezes the filesystem
    // holding boot/).
    let t_tree = Instant::now();
    let build = BuildDir(tmpfs_dir().join("rootstock-trixie-build"));
    drop(BuildDir(build.0.clone())); // leftovers of an interrupted build
    let tree = build.0.join("tree");
    io(std::fs::create_dir_all(&build.0), "create", &build.0)?;
    run(Command::new("cp").arg("-a").arg(&rootfs).arg(&tree))?;
    run(Command::new(recipe.join("ostree-ready.sh"))
        .arg(&tree)
        .env("TRIXIE_KERNEL_ROOT", &kernel.root)
        .env("TRIXIE_KVER", &kernel.version)
        .env("TRIXIE_INITRAMFS", &initramfs)
        .env("TRIXIE_ROOTSTOCK", bin)
        .env("TRIXIE_BLESS_UNIT", &bless)
        .env("TRIXIE_ROLLBACK_UNIT", &rollback))?;
    let tree_secs = secs(t_tree.elapsed());

    // The physical root, made by the real ostree CLI.
    let t_ostree = Instant::now();
    let sysroot = build.0.join("sysroot");
    io(std::fs::create_dir_all(&sysroot), "create", &sysroot)?;
    run(Command::new("ostree").args(["admin", "init-fs"]).arg(&sysroot))?;
    run(Command::new("ostree").args(["admin", "os-init", STATEROOT]).arg(sysroot_arg(&sysroot)))?;
    let version_file = tree.join("usr/share/testos/version");
    io(std::fs::create_dir_all(tree.join("usr/share/testos")), "create", &tree)?;
    for i in 1..=DEPLOYMENTS {
        io(std::fs::write(&version_file, format!("{i}\n")), "write", &version_file)?;
        run(Command::new("ostree")
            .args(["commit", &format!("--branch={BRANCH}")])
            .arg(format!("--repo={}", sysroot.join("ostree/repo").display()))
            .arg(format!("--tree=dir={}", tree.display()))
            .args([&format!("--subject=trixie {i}"), &format!("--add-metadata-string=version={i}")])
            .arg(format!("--timestamp=@{}", 1_700_000_000 + i)))?;
        // --retain: keep every deployment (the default prunes to two anyway).
        run(Command::new("ostree")
            .args(["admin", "deploy", "--retain"])
            .arg(sysroot_arg(&sysroot))
            .arg(format!("--os={STATEROOT}"))
            .args([&format!("--karg=root=LABEL={LABEL}"), "--karg=rw", BRANCH]))?;
    }
    run(Command::new(recipe.join("install-kernel.sh"))
        .arg(&tree)
        .arg(&other.root)
        .arg(&other.version)
        .arg(&other_initramfs))?;
    io(std::fs::write(&version_file, format!("{OTHER_KERNEL_VERSION}\n")), "write", &version_file)?;
    run(Command::new("ostree")
        .args(["commit", &format!("--branch={OTHER_KERNEL_BRANCH}")])
        .arg(format!("--repo={}", sysroot.join("ostree/repo").display()))
        .arg(format!("--tree=dir={}", tree.display()))
        .args([
            &format!("--subject=trixie {OTHER_KERNEL_VERSION} for {}", other.version),
            &format!("--add-metadata-string=version={OTHER_KERNEL_VERSION}"),
        ])
        .arg(format!("--timestamp=@{}", 1_700_000_100)))?;
    let status = run(Command::new("ostree").args(["admin", "status"]).arg(sysroot_arg(&sysroot)))?;
    let deployments = parse_admin_status(&status);
    if deployments.len() != DEPLOYMENTS {
        return err(format!("expected {DEPLOYMENTS} deployments, ostree admin status says:\n{status}"));
    }
    let ostree_secs = secs(t_ostree.elapsed());

    let t_mkfs = Instant::now();
    let disk = tmp_dir.join("disk.raw");
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", LABEL, "-d"])
        .arg(&sysroot)
        .arg(&disk)
        .arg(format!("{DISK_MB}M")))?;
    let mkfs_secs = secs(t_mkfs.elapsed());
    // What QEMU boots directly: the entries and the kernels/initramfs images
    // they name (ostree's copies in /boot).
    io(std::fs::create_dir_all(tmp_dir.join("boot/loader")), "create", &tmp_dir)?;
    run(Command::new("cp")
        .arg("-rL")
        .arg(sysroot.join("boot/loader/entries"))
        .arg(tmp_dir.join("boot/loader/entries")))?;
    run(Command::new("cp").arg("-r").arg(sysroot.join("boot/ostree")).arg(tmp_dir.join("boot/ostree")))?;
    let list = tmp_dir.join("deployments");
    io(std::fs::write(&list, deployments.join("\n") + "\n"), "write", &list)?;
    io(std::fs::write(tmp_dir.join("ostree-admin-status.txt"), &status), "write", &tmp_dir)?;
    drop(build);
    io(std::fs::rename(&tmp_dir, &image_dir), "rename to", &image_dir)?;
    prune(&dir, "image-", &image_dir);
    let times = BuildTimes {
        debootstrap,
        initramfs: initramfs_secs,
        tree: tree_secs,
        ostree: ostree_secs,
        mkfs: mkfs_secs,
        total: secs(t.elapsed()),
    };
    eprintln!("[trixie] built {}: {times}", image_dir.display());
    load(Some(times))
}

fn sysroot_arg(sysroot: &Path) -> String {
    format!("--sysroot={}", sysroot.display())
}

/// The printk timestamp of a console line, also when escape-sequence
/// leftovers precede it (systemd's first line follows its terminal reset).
fn printk_time(line: &str) -> Option<f64> {
    line.match_indices('[').find_map(|(i, _)| kernel_timestamp(&line[i..]))
}

/// Boot phases of the trixie OS, in seconds: "host" on the host's clock
/// since QEMU started, "kernel" on the guest's clock (printk timestamps).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Phases {
    /// host: QEMU start → the kernel's "Run /init as init process".
    pub qemu_to_run_init: Option<f64>,
    /// kernel: "Run /init".
    pub run_init: Option<f64>,
    /// kernel: rootstock's "switching root to ..." line.
    pub switch_root: Option<f64>,
    /// kernel: systemd's first line ("systemd 257... running in system mode").
    pub systemd: Option<f64>,
    /// kernel: the report's uptime.
    pub report: Option<f64>,
    /// host: QEMU start → the report's first line.
    pub qemu_to_report: Option<f64>,
    /// host: QEMU start → QEMU exited (after the clean poweroff).
    pub qemu_total: f64,
}

impl Phases {
    pub fn from_boot(b: &Booted) -> Phases {
        let ts = |needle: &str| b.console.find(needle).and_then(|l| printk_time(&l.text));
        Phases {
            qemu_to_run_init: b.timings.qemu_to_run_init,
            run_init: b.timings.kernel_run_init,
            switch_root: ts("rootstock: switching root to"),
            systemd: ts("running in system mode"),
            report: b.timings.report_uptime,
            qemu_to_report: b.timings.qemu_to_report,
            qemu_total: b.timings.qemu_total,
        }
    }

    /// Run /init → switch root (rootstock's initramfs), kernel clock.
    pub fn initramfs(&self) -> Option<f64> {
        self.switch_root.zip(self.run_init).map(|(s, r)| s - r)
    }

    /// Switch root → report (systemd's userspace up to the settled boot).
    pub fn userspace(&self) -> Option<f64> {
        self.report.zip(self.switch_root).map(|(r, s)| r - s)
    }
}

impl fmt::Display for Phases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2} s"));
        let d = |a: Option<f64>, b: Option<f64>| s(a.zip(b).map(|(a, b)| a - b));
        write!(
            f,
            "QEMU start → Run /init {} (host) | Run /init → switch root {} → systemd's first line {} → \
             report {} (kernel clock; Run /init → report {}) | QEMU start → report {} (host) | QEMU exit {:.2} s",
            s(self.qemu_to_run_init),
            s(self.initramfs()),
            d(self.systemd, self.switch_root),
            d(self.report, self.systemd),
            d(self.report, self.run_init),
            s(self.qemu_to_report),
            self.qemu_total
        )
    }
}

/// A private copy of the trixie image in `<cache>/work/NAME/`, booted any
/// number of times (each boot sees the previous boots' writes).
pub struct TrixieScenario {
    pub name: String,
    pub work: PathBuf,
    pub image: TrixieImage,
    /// This scenario's copy of the disk.
    pub disk: PathBuf,
    boots: AtomicUsize,
}

/// A boot that printed a report, with its phases.
#[derive(Debug)]
pub struct TrixieBoot {
    pub booted: Booted,
    pub phases: Phases,
}

impl TrixieScenario {
    /// The image (built or cached) for the cached Debian kernel and the
    /// static rootstock, copied for this scenario.
    pub fn new(name: &str) -> Result<TrixieScenario> {
        let kernel = debian_kernel()?;
        let bin = crate::rootstock::host_binary()?;
        let image = trixie_image(&kernel, &bin)?;
        let work = cache_dir().join("work").join(name);
        let _ = std::fs::remove_dir_all(&work);
        io(std::fs::create_dir_all(&work), "create", &work)?;
        let disk = work.join("disk.raw");
        run(Command::new("cp").arg("--sparse=always").arg(&image.disk).arg(&disk))?;
        Ok(TrixieScenario { name: name.into(), work, image, disk, boots: AtomicUsize::new(0) })
    }

    /// [`CONSOLE_ARGS`], the BLS options of entry `index`, then `extra`.
    pub fn cmdline(&self, index: usize, extra: &str) -> String {
        format!("{CONSOLE_ARGS} {} {extra}", self.image.entries[index].options).trim_end().to_string()
    }

    /// The QEMU run for the next boot: kernel and initramfs from entry
    /// `index` (as a boot loader would), 1.5 GiB, timeout at least 300 s.
    pub fn qemu(&self, index: usize, append: &str) -> Result<QemuBoot> {
        let n = self.boots.fetch_add(1, Ordering::Relaxed) + 1;
        let (kernel, initrd) = self.image.boot_files(index)?;
        let mut q = QemuBoot::new(
            &kernel,
            Some(&initrd),
            append,
            &self.disk,
            &self.work.join(format!("boot-{n}.log")),
        );
        q.memory_mb = 1536;
        q.timeout = q.timeout.max(Duration::from_secs(300));
        Ok(q)
    }

    /// Boot and demand a report; keep the log (`ROOTSTOCK_QEMU_KEEP`), print
    /// the phases.
    pub fn run(&self, q: &QemuBoot) -> Result<TrixieBoot> {
        let result = boot(q);
        if let Some(dir) = std::env::var_os("ROOTSTOCK_QEMU_KEEP") {
            let name = format!("{}-{}", self.name, q.log.file_name().unwrap_or_default().to_string_lossy());
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::copy(&q.log, Path::new(&dir).join(name));
        }
        let booted = result?;
        let phases = Phases::from_boot(&booted);
        eprintln!("[{}] {}: {phases}", self.name, q.log.display());
        Ok(TrixieBoot { booted, phases })
    }

    /// The `options` of the boot loader entries on this scenario's disk (as
    /// the OS left them: a boot loader would read these), newest version
    /// first. Read with debugfs: the image is not mounted.
    pub fn entry_options(&self) -> Result<Vec<String>> {
        let debugfs = |request: &str| run(Command::new("debugfs").arg("-R").arg(request).arg(&self.disk));
        let listing = debugfs("ls -p /boot/loader/entries")?;
        // `/INODE/MODE/UID/GID/NAME/SIZE/` per entry.
        let mut entries = Vec::new();
        for name in listing.lines().filter_map(|l| l.split('/').nth(5)).filter(|n| n.ends_with(".conf")) {
            entries.push(crate::parse_entry(&debugfs(&format!("cat /boot/loader/entries/{name}"))?)?);
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.version));
        Ok(entries.into_iter().map(|e| e.options).collect())
    }

    /// Boot entry `index`'s kernel and initramfs with the whole command line `append`.
    pub fn boot(&self, index: usize, append: &str) -> Result<TrixieBoot> {
        self.run(&self.qemu(index, append)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deployments_from_ostree_admin_status() {
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        let text = format!(
            "* debian {a}.1\n    Version: 2\n    origin refspec: debian/trixie/x86_64\n  debian {b}.0 (rollback)\n    \
             Version: 1\n"
        );
        assert_eq!(parse_admin_status(&text), vec![format!("debian/{a}.1"), format!("debian/{b}.0")]);
        assert!(parse_admin_status("* debian notachecksum.0\n").is_empty());
    }

    #[test]
    fn finds_printk_times_after_terminal_junk() {
        assert_eq!(printk_time("[!p]104[?7h[    3.969407] systemd[1]: systemd 257"), Some(3.969407));
        assert_eq!(printk_time("[  OK  ] Reached target"), None);
    }
}
