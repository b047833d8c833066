//! OSTree sysroots of the busybox test OS (made by the real `ostree` CLI via
//! tests/fixtures/make-sysroot.sh) and ext4 disk images made from them.

use crate::kernel::Kernel;
use crate::util::{Result, err, io, repo_root, run, tmpfs_dir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The filesystem label of the disk image; the fixture's BLS options say
/// `root=LABEL=testroot`.
pub const ROOT_LABEL: &str = "testroot";

/// Size of the scenario disk images.
pub const IMAGE_MB: u64 = 512;

/// One BLS entry of `/boot/loader/entries/`.
#[derive(Clone, Debug, PartialEq)]
pub struct BootEntry {
    pub title: String,
    pub version: u32,
    /// The `options` line: `root=LABEL=testroot rw ostree=/ostree/boot.N/...`.
    pub options: String,
    /// `linux` and `initrd`, relative to /boot.
    pub linux: String,
    pub initrd: Option<String>,
}

impl BootEntry {
    /// The value of `ostree=` in the options.
    pub fn ostree_arg(&self) -> Option<&str> {
        self.options.split_whitespace().find_map(|w| w.strip_prefix("ostree="))
    }
}

/// Parse one BLS entry file.
pub fn parse_entry(text: &str) -> Result<BootEntry> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')).map(|r| r.trim().to_string()))
    };
    let need =
        |key: &str| field(key).ok_or_else(|| crate::Error(format!("BLS entry without `{key}`:\n{text}")));
    let version = need("version")?;
    Ok(BootEntry {
        title: field("title").unwrap_or_default(),
        version: version
            .parse()
            .map_err(|_| crate::Error(format!("BLS version `{version}` is not a number")))?,
        options: need("options")?,
        linux: need("linux")?,
        initrd: field("initrd"),
    })
}

/// The entries of `SYSROOT/boot/loader/entries` in ostree's order: version
/// descending, so index 0 is the default and 1 the rollback.
pub fn read_entries(sysroot: &Path) -> Result<Vec<BootEntry>> {
    let dir = sysroot.join("boot/loader/entries");
    let mut entries = Vec::new();
    for e in io(std::fs::read_dir(&dir), "read", &dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "conf") {
            entries.push(parse_entry(&io(std::fs::read_to_string(&path), "read", &path)?)?);
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.version));
    Ok(entries)
}

/// A physical root on a tmpfs, removed when dropped.
pub struct Sysroot {
    pub dir: PathBuf,
    pub entries: Vec<BootEntry>,
    /// The ostree branch of the test OS: `testos/x86_64`, `testos/aarch64`.
    pub branch: String,
}

/// What goes into each deployment of the test OS.
#[derive(Clone, Debug, Default)]
pub struct TestOs {
    /// Deployments 1..=N; N (the last deployed) is the default.
    pub deployments: usize,
    /// Stored as the deployment's `usr/lib/modules/$kver/initramfs.img` (so
    /// ostree copies it to /boot); `None` stores a placeholder, since QEMU
    /// gets the initramfs under test by `-initrd` anyway.
    pub initramfs: Option<PathBuf>,
    /// A static busybox; default the architecture's ([`Arch::busybox`]:
    /// /bin/busybox, Debian's busybox-static, on x86_64).
    pub busybox: Option<PathBuf>,
    /// The machine it is built for and booted on (the kernel's, the
    /// busybox's and the static host tool's architecture).
    pub arch: crate::Arch,
    /// Deployments built with a kernel of their own instead of the
    /// scenario's (a deployment of an older kernel, to boot by kexec).
    pub own_kernels: Vec<OwnKernel>,
}

/// Deployment `deployment` (1-based, as [`TestOs::deployments`] counts) is
/// built with `kernel`: its vmlinuz and `initramfs` (a placeholder when
/// `None`) in `usr/lib/modules/$kver/`, which is also its only modules
/// directory (a stub: the test OS loads no modules).
#[derive(Clone, Debug)]
pub struct OwnKernel {
    pub deployment: usize,
    pub kernel: Kernel,
    pub initramfs: Option<PathBuf>,
}

/// Build the busybox test OS's sysroot with `kernel` in every deployment.
pub fn build_sysroot(kernel: &Kernel, os: &TestOs) -> Result<Sysroot> {
    static N: AtomicUsize = AtomicUsize::new(0);
    if kernel.arch != os.arch {
        return err(format!("a {:?} test OS with a {:?} kernel", os.arch, kernel.arch));
    }
    let busybox = match &os.busybox {
        Some(b) => b.clone(),
        None => os.arch.busybox()?,
    };
    if !busybox.exists() {
        return err(format!("{} not found (apt-get install busybox-static)", busybox.display()));
    }
    let dir = tmpfs_dir().join(format!(
        "rootstock-qemu-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let branch = format!("testos/{}", os.arch.uname_m());
    let mut sysroot = Sysroot { dir, entries: Vec::new(), branch };
    let repo = repo_root();
    let mut cmd = Command::new(repo.join("tests/fixtures/make-sysroot.sh"));
    cmd.arg(&sysroot.dir)
        .arg(os.deployments.to_string())
        .env("TESTOS_POPULATE", repo.join("qemu-tests/testos/populate.sh"))
        .env("TESTOS_KERNEL", kernel.vmlinuz())
        .env("TESTOS_KVER", &kernel.version)
        .env("TESTOS_BUSYBOX", &busybox)
        .env("TESTOS_ARCH", os.arch.uname_m());
    match &os.initramfs {
        Some(i) => cmd.env("TESTOS_INITRAMFS", i),
        None => cmd.env_remove("TESTOS_INITRAMFS"),
    };
    for own in &os.own_kernels {
        let n = own.deployment;
        cmd.env(format!("TESTOS_KERNEL_{n}"), own.kernel.vmlinuz())
            .env(format!("TESTOS_KVER_{n}"), &own.kernel.version);
        if let Some(i) = &own.initramfs {
            cmd.env(format!("TESTOS_INITRAMFS_{n}"), i);
        }
    }
    // The test OS blesses itself and reports its counting state with the
    // static host tool when there is one (dracut-only runs may have none).
    match os.arch.host_binary() {
        Ok(bin) => cmd.env("ROOTSTOCK_HOST_BIN", bin),
        Err(_) => cmd.env_remove("ROOTSTOCK_HOST_BIN"),
    };
    run(&mut cmd)?;
    sysroot.entries = read_entries(&sysroot.dir)?;
    Ok(sysroot)
}

impl Sysroot {
    /// A raw ext4 image of SIZE_MB labelled [`ROOT_LABEL`], filled by
    /// `mkfs.ext4 -d` (no loop mount). The immutable flag of the deployment
    /// directories is not carried over.
    pub fn disk_image(&self, image: &Path, size_mb: u64) -> Result<()> {
        let _ = std::fs::remove_file(image);
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", ROOT_LABEL, "-d"])
            .arg(&self.dir)
            .arg(image)
            .arg(format!("{size_mb}M")))?;
        Ok(())
    }
}

/// The root filesystem of a [`DiskSpec`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RootFs {
    /// `mkfs.ext4 -d` (no loop mount).
    #[default]
    Ext4,
    /// `mkfs.xfs -p PROTOFILE` (no loop mount); see [`xfs_protofile`] for what
    /// a protofile cannot carry.
    Xfs,
    /// `mkfs.btrfs --rootdir` (no loop mount).
    Btrfs,
}

/// A GPT layout: partition 1 is a small ESP-like partition (type EF00, left
/// unformatted), partition 2 the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptSpec {
    pub esp_mb: u64,
    /// The root partition's unique GUID (`root=PARTUUID=`), lower case.
    pub partuuid: String,
    /// The root partition's GPT name (`root=PARTLABEL=`).
    pub partlabel: String,
}

/// How [`Sysroot::make_disk`] lays out the disk image. The filesystem label
/// is always [`ROOT_LABEL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub fs: RootFs,
    /// The filesystem UUID (`mkfs.ext4 -U`, `mkfs.xfs -m uuid=`); random if `None`.
    pub uuid: Option<String>,
    /// `None`: the filesystem fills the whole disk (`root=/dev/vda`).
    pub gpt: Option<GptSpec>,
    pub size_mb: u64,
    /// ext4 with the `verity` feature (`mkfs.ext4 -O verity`): files on it
    /// can have fs-verity (enabled by a kernel that has it, in the guest).
    pub verity: bool,
}

impl Default for DiskSpec {
    fn default() -> DiskSpec {
        DiskSpec { fs: RootFs::Ext4, uuid: None, gpt: None, size_mb: IMAGE_MB, verity: false }
    }
}

impl DiskSpec {
    /// The root's device in the guest (the image is the first virtio disk).
    pub fn root_device(&self) -> &'static str {
        if self.gpt.is_some() { "/dev/vda2" } else { "/dev/vda" }
    }

    /// Where the root filesystem starts in the image, in bytes.
    pub fn root_offset(&self) -> u64 {
        self.gpt.as_ref().map_or(0, |g| SECTORS_PER_MB * (1 + g.esp_mb) * 512)
    }
}

/// A file of the ext4 filesystem at byte `offset` of `image`, read with
/// `debugfs` (no loop mount), e.g. what a boot wrote to `/var`. The
/// journal is replayed first (`e2fsck -E journal_only`): what a guest wrote
/// just before powering off may be only there. That changes the image when
/// the filesystem starts at 0; one at an offset is copied out first
/// (e2fsck cannot reopen an `IMAGE?offset=` after the replay).
pub fn read_ext4_file(image: &Path, offset: u64, path: &str) -> Result<Vec<u8>> {
    let part = image.with_extension(format!("part-{}", std::process::id()));
    let fs = if offset == 0 {
        image.to_path_buf()
    } else {
        run(Command::new("dd")
            .arg(format!("if={}", image.display()))
            .arg(format!("of={}", part.display()))
            .arg(format!("skip={offset}"))
            .args(["iflag=skip_bytes", "bs=1M", "conv=sparse", "status=none"]))?;
        part.clone()
    };
    let read = || -> Result<Vec<u8>> {
        let replay = Command::new("e2fsck").args(["-y", "-E", "journal_only"]).arg(&fs).output()?;
        // 0: nothing to do, 1: the journal was replayed.
        if !matches!(replay.status.code(), Some(0 | 1)) {
            return err(format!(
                "e2fsck -E journal_only {} failed ({}):\n{}",
                fs.display(),
                replay.status,
                String::from_utf8_lossy(&replay.stderr)
            ));
        }
        let out = image.with_extension(format!("dump-{}", std::process::id()));
        let _ = std::fs::remove_file(&out);
        let dump =
            run(Command::new("debugfs").arg("-R").arg(format!("dump {path} {}", out.display())).arg(&fs));
        let bytes = std::fs::read(&out);
        let _ = std::fs::remove_file(&out);
        dump?;
        bytes.or_else(|e| err(format!("{path} is not in the ext4 filesystem of {} ({e})", image.display())))
    };
    let result = read();
    if offset != 0 {
        let _ = std::fs::remove_file(&part);
    }
    result
}

/// 512-byte sectors; partitions start on 1 MiB boundaries.
const SECTORS_PER_MB: u64 = 2048;

impl Sysroot {
    /// Write a disk image of this sysroot laid out as `spec` says, without
    /// loop mounts: ext4 by `mkfs.ext4 -d` (at the partition's byte offset
    /// with `-E offset=`), xfs by `mkfs.xfs -p` with a generated protofile,
    /// the GPT by `sgdisk`.
    pub fn make_disk(&self, image: &Path, spec: &DiskSpec) -> Result<()> {
        let _ = std::fs::remove_file(image);
        let file = io(std::fs::File::create(image), "create", image)?;
        io(file.set_len(spec.size_mb << 20), "resize", image)?;
        drop(file);
        let (offset_bytes, fs_mb) = match &spec.gpt {
            None => (0, spec.size_mb),
            Some(gpt) => {
                // 1 MiB for the primary GPT, the ESP, the root, 1 MiB for the backup GPT.
                let root_start = SECTORS_PER_MB * (1 + gpt.esp_mb);
                let Some(root_mb) = spec.size_mb.checked_sub(gpt.esp_mb + 2).filter(|&m| m > 0) else {
                    return err(format!(
                        "disk of {} MB too small for an ESP of {} MB",
                        spec.size_mb, gpt.esp_mb
                    ));
                };
                run(Command::new("sgdisk")
                    .args(["--clear", "--set-alignment=2048"])
                    .arg(format!("--new=1:{SECTORS_PER_MB}:+{}M", gpt.esp_mb))
                    .args(["--typecode=1:ef00", "--change-name=1:ESP"])
                    .arg(format!("--new=2:{root_start}:+{root_mb}M"))
                    // 8304: Linux x86-64 root (/), as the Discoverable Partitions Specification says
                    .arg("--typecode=2:8304")
                    .arg(format!("--change-name=2:{}", gpt.partlabel))
                    .arg(format!("--partition-guid=2:{}", gpt.partuuid))
                    .arg(image))
                .map_err(|e| crate::Error(format!("{e}\n(sgdisk is in Debian's gdisk package)")))?;
                (root_start * 512, root_mb)
            }
        };
        match spec.fs {
            RootFs::Ext4 => {
                let mut cmd = Command::new("mkfs.ext4");
                cmd.args(["-q", "-F", "-L", ROOT_LABEL]);
                if let Some(u) = &spec.uuid {
                    cmd.args(["-U", u]);
                }
                if spec.verity {
                    cmd.args(["-O", "verity"]);
                }
                if offset_bytes > 0 {
                    cmd.arg("-E").arg(format!("offset={offset_bytes}"));
                }
                // the size bounds the filesystem to the partition (the backup GPT follows it)
                run(cmd.arg("-d").arg(&self.dir).arg(image).arg(format!("{fs_mb}M")))?;
            }
            RootFs::Btrfs => {
                if offset_bytes > 0 {
                    return err(
                        "btrfs on a GPT disk is not supported (mkfs.btrfs cannot write at an offset)",
                    );
                }
                let mut cmd = Command::new("mkfs.btrfs");
                cmd.args(["-q", "-f", "-L", ROOT_LABEL]);
                if let Some(u) = &spec.uuid {
                    cmd.args(["-U", u]);
                }
                run(cmd.arg("--rootdir").arg(&self.dir).arg(image)).map_err(|e| {
                    crate::Error(format!("{e}\n(mkfs.btrfs is in Debian's btrfs-progs package)"))
                })?;
            }
            RootFs::Xfs => {
                if offset_bytes > 0 {
                    return err("xfs on a GPT disk is not supported (mkfs.xfs cannot write at an offset)");
                }
                let proto = image.with_extension("xfs-proto");
                io(std::fs::write(&proto, xfs_protofile(&self.dir)?), "write", &proto)?;
                let mut cmd = Command::new("mkfs.xfs");
                cmd.args(["-q", "-f", "-L", ROOT_LABEL]);
                if let Some(u) = &spec.uuid {
                    cmd.arg("-m").arg(format!("uuid={u}"));
                }
                let out = run(cmd.arg("-p").arg(&proto).arg(image))
                    .map_err(|e| crate::Error(format!("{e}\n(mkfs.xfs is in Debian's xfsprogs package)")));
                let _ = std::fs::remove_file(&proto);
                out?;
            }
        }
        Ok(())
    }

    /// `ostree admin ARGS --sysroot=DIR`.
    pub fn admin(&self, args: &[&str]) -> Result<String> {
        run(Command::new("ostree").arg("admin").args(args).arg(format!("--sysroot={}", self.dir.display())))
    }

    /// Commit version `version` of the test OS to its branch: the current
    /// head with `usr/share/testos/version` replaced (an overlay tree), so a
    /// booted deployment reports `version=VERSION`. The commit gets no
    /// `version` metadata and keeps `usr/lib/os-release`: ostree compares
    /// deployments position by position (kernel, kargs, commit version) and
    /// swaps only the subbootversion when nothing but the commits changed.
    pub fn commit_version(&self, version: u32) -> Result<()> {
        let overlay = self.dir.join(format!("tmp/overlay-{version}"));
        let _ = std::fs::remove_dir_all(&overlay);
        let share = overlay.join("usr/share/testos");
        io(std::fs::create_dir_all(&share), "create", &share)?;
        for d in [
            overlay.join("usr/share/testos"),
            overlay.join("usr/share"),
            overlay.join("usr"),
            overlay.clone(),
        ] {
            io(std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)), "chmod", &d)?;
        }
        io(std::fs::write(share.join("version"), format!("{version}\n")), "write", &share)?;
        let out = run(Command::new("ostree")
            .arg("commit")
            .arg(format!("--repo={}", self.dir.join("ostree/repo").display()))
            .arg(format!("--branch={}", self.branch))
            .arg(format!("--tree=ref={}", self.branch))
            .arg(format!("--tree=dir={}", overlay.display()))
            .arg(format!("--subject=testos {version}"))
            .arg(format!("--timestamp=@{}", 1_700_000_000 + u64::from(version))));
        let _ = std::fs::remove_dir_all(&overlay);
        out.map(drop)
    }

    /// Commit the directory tree `overlay` on top of the branch's head (its
    /// files added or replacing the head's), as [`Sysroot::commit_version`]
    /// does with a version file; [`Sysroot::deploy`] makes it the default.
    pub fn commit_tree(&self, overlay: &Path, subject: &str) -> Result<()> {
        run(Command::new("ostree")
            .arg("commit")
            .arg(format!("--repo={}", self.dir.join("ostree/repo").display()))
            .arg(format!("--branch={}", self.branch))
            .arg(format!("--tree=ref={}", self.branch))
            .arg(format!("--tree=dir={}", overlay.display()))
            .arg(format!("--subject={subject}"))
            .arg("--timestamp=@1700000100"))
        .map(drop)
    }

    /// `ostree admin deploy` of the branch's head as the new default, then
    /// re-read the entries. Without `retain`, ostree keeps only the new
    /// deployment and the previous default (there is no booted one).
    pub fn deploy(&mut self, retain: bool) -> Result<()> {
        let mut args = vec!["deploy", "--os=testos"];
        if retain {
            args.push("--retain");
        }
        args.push(&self.branch);
        self.admin(&args)?;
        self.entries = read_entries(&self.dir)?;
        Ok(())
    }

    /// `ostree admin undeploy INDEX`, then re-read the entries.
    pub fn undeploy(&mut self, index: usize) -> Result<()> {
        self.admin(&["undeploy", &index.to_string()])?;
        self.entries = read_entries(&self.dir)?;
        Ok(())
    }

    /// (bootversion, subbootversion): `boot/loader -> loader.N`, `ostree/boot.N -> boot.N.M`.
    pub fn boot_version(&self) -> Result<(u32, u32)> {
        let link = |p: PathBuf| -> Result<String> {
            Ok(io(std::fs::read_link(&p), "readlink", &p)?.to_string_lossy().into_owned())
        };
        let loader = link(self.dir.join("boot/loader"))?;
        let bad = |what: &str| crate::Error(format!("unexpected symlink target {what}"));
        let n: u32 =
            loader.strip_prefix("loader.").and_then(|n| n.parse().ok()).ok_or_else(|| bad(&loader))?;
        let boot = link(self.dir.join(format!("ostree/boot.{n}")))?;
        let m = boot
            .strip_prefix(&format!("boot.{n}."))
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| bad(&boot))?;
        Ok((n, m))
    }

    /// The deployment directory of entry `index` (its `ostree=` resolved on the host).
    pub fn deployment_dir(&self, index: usize) -> Result<PathBuf> {
        let entry = self.entries.get(index).ok_or_else(|| crate::Error(format!("no entry {index}")))?;
        let arg = entry.ostree_arg().ok_or_else(|| crate::Error(format!("no ostree= in {entry:?}")))?;
        let link = self.dir.join(arg.trim_start_matches('/'));
        io(std::fs::canonicalize(&link), "resolve", &link)
    }

    /// The deployment directory names (`$csum.$serial`) of the entries, in
    /// ostree's order.
    pub fn deployment_ids(&self) -> Result<Vec<String>> {
        (0..self.entries.len())
            .map(|i| {
                Ok(self.deployment_dir(i)?.file_name().unwrap_or_default().to_string_lossy().into_owned())
            })
            .collect()
    }

    /// Remove `usr/sbin/init` (what `/sbin/init` names) from the deployment
    /// of entry `index`. ostree makes the deployment directory immutable:
    /// lifted for the change, set again afterwards.
    pub fn remove_init(&self, index: usize) -> Result<()> {
        let dir = self.deployment_dir(index)?;
        run(Command::new("chattr").arg("-i").arg(&dir))?;
        let init = dir.join("usr/sbin/init");
        let removed = io(std::fs::remove_file(&init), "remove", &init);
        run(Command::new("chattr").arg("+i").arg(&dir))?;
        removed
    }
}

/// An `mkfs.xfs -p` protofile for the tree at `root`: every directory,
/// regular file (its contents read from the host path), symlink, device
/// node and fifo with its mode and owner. What the format cannot express:
/// hard links (each link becomes a copy), the sticky bit, extended
/// attributes, timestamps; sockets are left out. A name, symlink target or
/// host path holding white space or `:` (a comment) is an error.
pub fn xfs_protofile(root: &Path) -> Result<String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn token(s: &std::ffi::OsStr, what: &str, at: &Path) -> Result<String> {
        match s.to_str() {
            Some(t) if !t.is_empty() && t != "$" && !t.contains(|c: char| c.is_whitespace() || c == ':') => {
                Ok(t.to_string())
            }
            _ => err(format!("{what} {s:?} at {} cannot be written in an xfs protofile", at.display())),
        }
    }
    fn mode(kind: char, m: &std::fs::Metadata) -> String {
        let bits = m.mode();
        let suid = if bits & 0o4000 != 0 { 'u' } else { '-' };
        let sgid = if bits & 0o2000 != 0 { 'g' } else { '-' };
        format!("{kind}{suid}{sgid}{:03o} {} {}", bits & 0o777, m.uid(), m.gid())
    }
    fn dir(path: &Path, out: &mut String) -> Result<()> {
        let mut names: Vec<_> = io(std::fs::read_dir(path), "read", path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        names.sort();
        for name in names {
            let p = path.join(&name);
            let m = io(std::fs::symlink_metadata(&p), "stat", &p)?;
            let t = m.file_type();
            let n = token(&name, "file name", path)?;
            if t.is_dir() {
                out.push_str(&format!("{n} {}\n", mode('d', &m)));
                dir(&p, out)?;
                out.push_str("$\n");
            } else if t.is_file() {
                out.push_str(&format!("{n} {} {}\n", mode('-', &m), token(p.as_os_str(), "path", &p)?));
            } else if t.is_symlink() {
                let target = io(std::fs::read_link(&p), "readlink", &p)?;
                out.push_str(&format!(
                    "{n} {} {}\n",
                    mode('l', &m),
                    token(target.as_os_str(), "symlink target", &p)?
                ));
            } else if t.is_block_device() || t.is_char_device() {
                let kind = if t.is_block_device() { 'b' } else { 'c' };
                let (major, minor) = (rdev_major(m.rdev()), rdev_minor(m.rdev()));
                out.push_str(&format!("{n} {} {major} {minor}\n", mode(kind, &m)));
            } else if t.is_fifo() {
                out.push_str(&format!("{n} {}\n", mode('p', &m)));
            }
        }
        Ok(())
    }
    let m = io(std::fs::metadata(root), "stat", root)?;
    // a dummy boot file name, the obsolete block and inode counts, the root directory
    let mut out = format!("/dev/null\n0 0\n{}\n", mode('d', &m));
    dir(root, &mut out)?;
    out.push_str("$\n");
    Ok(out)
}

fn rdev_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

fn rdev_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

impl Drop for Sysroot {
    fn drop(&mut self) {
        // ostree marks deployment directories immutable.
        if let Ok(dirs) = std::fs::read_dir(self.dir.join("ostree/deploy/testos/deploy")) {
            for d in dirs.flatten().filter(|d| d.path().is_dir()) {
                let _ = Command::new("chattr").arg("-i").arg(d.path()).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_ostree_bls_entry() {
        let e = parse_entry(
            "title TestOS 2 (ostree:0)\nversion 2\noptions root=LABEL=testroot rw ostree=/ostree/boot.0/testos/ab/0\n\
             linux /ostree/testos-ab/vmlinuz-6.1.0-56-amd64\ninitrd /ostree/testos-ab/initramfs-6.1.0-56-amd64.img\n",
        )
        .unwrap();
        assert_eq!(e.version, 2);
        assert_eq!(e.title, "TestOS 2 (ostree:0)");
        assert_eq!(e.ostree_arg(), Some("/ostree/boot.0/testos/ab/0"));
        assert_eq!(e.initrd.as_deref(), Some("/ostree/testos-ab/initramfs-6.1.0-56-amd64.img"));
        assert!(parse_entry("title x\nversion 1\n").is_err());
    }
}
