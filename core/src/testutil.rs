//! A self-removing temporary directory, for tests in every crate of the
//! workspace.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "rootstock-unit-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> TempDir {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `cmd` with `stdin` as its input; its output. Panics (with its stderr)
/// when it fails.
pub fn run_piped(cmd: &mut Command, stdin: &[u8]) -> Vec<u8> {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Deployment checksums of [`fake_physical_root`].
pub const C1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
pub const C2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// A physical root at `p` laid out as `ostree admin deploy` writes it: two
/// deployments of stateroot `os` (C2 the default, C1 the rollback), each with
/// an executable `/sbin/init`, `boot.1` links and BLS entries whose options
/// are `root=LABEL={root_label} rw ostree=...`. With `kver`, each deployment
/// also has `usr/lib/modules/{kver}`.
pub fn fake_physical_root(p: &Path, root_label: &str, kver: Option<&str>) {
    use std::os::unix::fs::{PermissionsExt, symlink};
    for csum in [C1, C2] {
        let d = p.join(format!("ostree/deploy/os/deploy/{csum}.0"));
        for sub in ["usr/sbin", "etc", "sysroot", "var", "dev", "proc", "sys", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        if let Some(kver) = kver {
            std::fs::create_dir_all(d.join("usr/lib/modules").join(kver)).unwrap();
        }
        std::fs::write(d.join("usr/sbin/init"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(d.join("usr/sbin/init"), std::fs::Permissions::from_mode(0o755)).unwrap();
        symlink("usr/sbin", d.join("sbin")).unwrap();
        let b = p.join(format!("ostree/boot.1.0/os/{csum}"));
        std::fs::create_dir_all(&b).unwrap();
        symlink(format!("../../../deploy/os/deploy/{csum}.0"), b.join("0")).unwrap();
    }
    std::fs::create_dir_all(p.join("ostree/deploy/os/var")).unwrap();
    symlink("boot.1.0", p.join("ostree/boot.1")).unwrap();
    std::fs::create_dir_all(p.join("boot/loader.1/entries")).unwrap();
    symlink("loader.1", p.join("boot/loader")).unwrap();
    for (i, csum) in [(2, C2), (1, C1)] {
        std::fs::write(
            p.join(format!("boot/loader.1/entries/ostree-{i}-os.conf")),
            format!(
                "title os {i}\nversion {i}\nlinux /ostree/os-{csum}/vmlinuz\n\
                 initrd /ostree/os-{csum}/initramfs.img\n\
                 options root=LABEL={root_label} rw ostree=/ostree/boot.1/os/{csum}/0\n"
            ),
        )
        .unwrap();
    }
}
