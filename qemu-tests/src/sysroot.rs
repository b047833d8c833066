//! OSTree sysroots of the busybox test OS (made by the real `ostree` CLI via
//! tests/fixtures/make-sysroot.sh) and ext4 disk images made from them.

use crate::kernel::Kernel;
use crate::util::{Result, err, io, repo_root, run, tmpfs_dir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The filesystem label of the disk image; the fixture's BLS options say
/// `root=LABEL=testroot`.
pub const ROOT_LABEL: &str = "testroot";

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
    /// A static busybox; default /bin/busybox (Debian's busybox-static).
    pub busybox: Option<PathBuf>,
}

/// Build the busybox test OS's sysroot with `kernel` in every deployment.
pub fn build_sysroot(kernel: &Kernel, os: &TestOs) -> Result<Sysroot> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let busybox = os.busybox.clone().unwrap_or_else(|| "/bin/busybox".into());
    if !busybox.exists() {
        return err(format!("{} not found (apt-get install busybox-static)", busybox.display()));
    }
    let dir = tmpfs_dir().join(format!(
        "rootstock-qemu-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut sysroot = Sysroot { dir, entries: Vec::new() };
    let repo = repo_root();
    let mut cmd = Command::new(repo.join("tests/fixtures/make-sysroot.sh"));
    cmd.arg(&sysroot.dir)
        .arg(os.deployments.to_string())
        .env("TESTOS_POPULATE", repo.join("qemu-tests/testos/populate.sh"))
        .env("TESTOS_KERNEL", kernel.vmlinuz())
        .env("TESTOS_KVER", &kernel.version)
        .env("TESTOS_BUSYBOX", &busybox);
    match &os.initramfs {
        Some(i) => cmd.env("TESTOS_INITRAMFS", i),
        None => cmd.env_remove("TESTOS_INITRAMFS"),
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
