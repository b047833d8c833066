//! Shared helpers for the namespace tests: sysroots made by the real `ostree`
//! CLI on a tmpfs, and scripts run in a private mount namespace.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// These tests need root (mount namespaces). CI sets
/// `ROOTSTOCK_REQUIRE_ROOT_TESTS=1` so that a missing privilege fails there.
pub fn have_root() -> bool {
    let root = rustix::process::geteuid().is_root();
    if !root {
        assert!(
            std::env::var_os("ROOTSTOCK_REQUIRE_ROOT_TESTS").is_none(),
            "ROOTSTOCK_REQUIRE_ROOT_TESTS is set but the tests do not run as root"
        );
        eprintln!("skipping: needs root for mount namespaces");
    }
    root
}

/// A test directory on a tmpfs holding `phys/` (the physical root made by
/// `ostree admin deploy`), `sysroot/` (its mount point), `run/` and `etc/`.
pub struct Fixture {
    pub dir: PathBuf,
}

impl Fixture {
    pub fn new(deployments: usize) -> Fixture {
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::var_os("ROOTSTOCK_TEST_TMPFS").map(PathBuf::from).unwrap_or("/dev/shm".into());
        let dir =
            base.join(format!("rootstock-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).unwrap();
        for d in ["sysroot", "run", "config"] {
            std::fs::create_dir(dir.join(d)).unwrap();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-sysroot.sh");
        let out = Command::new(script).arg(dir.join("phys")).arg(deployments.to_string()).output().unwrap();
        assert!(out.status.success(), "make-sysroot.sh: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(dir.join("cmdline"), "").unwrap();
        Fixture { dir }
    }

    pub fn phys(&self) -> PathBuf {
        self.dir.join("phys")
    }

    /// [`Fixture::new`], with the physical root moved onto an ext4
    /// filesystem with fs-verity (`mkfs.ext4 -O verity`, loop-mounted at
    /// `phys/` until the fixture is dropped): tmpfs has no fs-verity.
    /// `cp -a` keeps the checkouts' hardlinks into the repository.
    pub fn on_ext4_with_verity(deployments: usize) -> Fixture {
        let f = Fixture::new(deployments);
        let (phys, copy, image) = (f.phys(), f.dir.join("phys.tmpfs"), f.dir.join("phys.ext4"));
        let sh = |script: &str| {
            let out = Command::new("sh")
                .args(["-euc", script, "sh"])
                .args([&phys, &copy, &image])
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        };
        sh(r#"mv "$1" "$2" && mkdir "$1"
            mkfs.ext4 -q -F -b 4096 -O verity -L testroot "$3" 512M
            mount -o loop "$3" "$1" && cp -a "$2/." "$1/"
            find "$2/ostree/deploy" -mindepth 3 -maxdepth 3 -type d -exec chattr -i {} +
            rm -rf "$2""#);
        f
    }

    /// Write the composefs image of the deployment at `index` as ostree
    /// ≥ 2023.4 does at deploy time (Debian 12's ostree cannot): returns its
    /// fs-verity digest. The deployment directory is made mutable first.
    pub fn write_composefs_image(&self, index: usize, opts: &rootstock_mkcfs::Options) -> [u8; 32] {
        let dir = self.deploy_dir(index);
        let _ = Command::new("chattr").arg("-i").arg(&dir).status();
        let rel = dir.strip_prefix(self.phys()).unwrap();
        rootstock_mkcfs::write_image(&self.phys(), rel, opts).unwrap()
    }

    /// The deployments in ostree's order, from `ostree admin status`'s view:
    /// (deployment directory relative to phys, its version number).
    pub fn deployments(&self) -> Vec<(String, String)> {
        let entries = self.phys().join("boot/loader/entries");
        let mut v: Vec<(u32, String)> = std::fs::read_dir(&entries)
            .unwrap()
            .map(|e| {
                let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
                let version = text.lines().find_map(|l| l.strip_prefix("version ")).unwrap().parse().unwrap();
                let ostree = text.split_whitespace().find_map(|w| w.strip_prefix("ostree=")).unwrap();
                (version, ostree.to_string())
            })
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.0));
        v.into_iter().map(|(version, ostree)| (ostree, version.to_string())).collect()
    }

    /// The `ostree=` argument of the deployment at `index`.
    pub fn ostree_arg(&self, index: usize) -> String {
        self.deployments()[index].0.clone()
    }

    /// Canonical path of a deployment directory (following the boot links).
    pub fn deploy_dir(&self, index: usize) -> PathBuf {
        let arg = self.ostree_arg(index);
        std::fs::canonicalize(self.phys().join(arg.trim_start_matches('/'))).unwrap()
    }

    /// The boot-counting markers on the physical root, sorted.
    pub fn markers(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.phys().join("ostree/rootstock"))
            .map(|rd| rd.flatten().map(|e| e.file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The marker base name of the deployment at `index`.
    pub fn marker_base(&self, index: usize) -> String {
        format!("testos-{}", self.deploy_dir(index).file_name().unwrap().to_str().unwrap())
    }

    /// systemd-boot counting deployment 0's entry this boot: an ESP
    /// (a directory, `DIR/esp`) whose `loader/entries` hold deployment 0's
    /// entry as `counted` and deployment 1's as `other`, and a stand-in
    /// efivarfs (`DIR/efivars`) whose `LoaderBootCountPath` names `counted`.
    /// Returns (esp, efivars).
    pub fn counted_by_the_boot_loader(&self, counted: &str, other: &str) -> (PathBuf, PathBuf) {
        let esp = self.dir.join("esp");
        let entries = esp.join("loader/entries");
        std::fs::create_dir_all(&entries).unwrap();
        for (name, index) in [(counted, 0), (other, 1)] {
            std::fs::write(entries.join(name), format!("options ostree={}\n", self.ostree_arg(index)))
                .unwrap();
        }
        let efivars = self.dir.join("efivars");
        std::fs::create_dir_all(&efivars).unwrap();
        // The variable's attributes, then the path in UTF-16LE with its NUL.
        let mut var = vec![7, 0, 0, 0];
        for u in format!("\\loader\\entries\\{counted}\0").encode_utf16() {
            var.extend(u.to_le_bytes());
        }
        std::fs::write(efivars.join(rootstock_core::counting::LOADER_BOOT_COUNT_PATH), var).unwrap();
        (esp, efivars)
    }

    pub fn set_cmdline(&self, line: &str) {
        std::fs::write(self.dir.join("cmdline"), line).unwrap();
    }

    pub fn set_config(&self, text: &str) {
        std::fs::create_dir_all(self.dir.join("config/etc/rootstock")).unwrap();
        std::fs::write(self.dir.join("config/etc/rootstock/rootstock.conf"), text).unwrap();
    }

    /// Run `script` with sh in a new private mount namespace, where
    /// `$PHYS` is bound onto `$SYSROOT` first (as the initramfs mounts the
    /// root device there). `$ROOTSTOCK` (the host tool), `$ROOTSTOCK_BOOT` (the
    /// boot program, see [`boot_binary`]), `$RUN`, `$CMDLINE`, `$CONFIG_ROOT`
    /// are set. Returns (exit ok, stdout, stderr).
    pub fn boot(&self, script: &str) -> (bool, String, String) {
        let full = format!("set -u\nmount --bind \"$PHYS\" \"$SYSROOT\" || exit 99\n{script}");
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &full])
            .env("ROOTSTOCK", env!("CARGO_BIN_EXE_rootstock"))
            .env("ROOTSTOCK_BOOT", boot_binary())
            .env("PHYS", self.phys())
            .env("SYSROOT", self.dir.join("sysroot"))
            .env("RUN", self.dir.join("run"))
            .env("CMDLINE", self.dir.join("cmdline"))
            .env("CONFIG_ROOT", self.dir.join("config"))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A fresh /run, as after a reboot.
    pub fn reboot(&self) {
        std::fs::remove_dir_all(self.dir.join("run")).unwrap();
        std::fs::create_dir(self.dir.join("run")).unwrap();
    }
}

/// The boot program that prepare-root runs from: `$ROOTSTOCK_BOOT_BIN` (`make
/// check` sets it to the static release build, what ships), else the
/// `rootstock-boot` that cargo built beside the host tool (cargo builds it
/// for `boot/tests/`, so `cargo test --workspace` keeps it current).
pub fn boot_binary() -> PathBuf {
    let path = match std::env::var_os("ROOTSTOCK_BOOT_BIN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_BIN_EXE_rootstock")).with_file_name("rootstock-boot"),
    };
    assert!(
        path.is_file(),
        "the boot program {} is missing: run `cargo test --workspace` or `make check`, or set ROOTSTOCK_BOOT_BIN",
        path.display()
    );
    path
}

/// The command that runs prepare-root in [`Fixture::boot`] scripts.
pub const PREPARE: &str = "\"$ROOTSTOCK_BOOT\" prepare-root --cmdline \"$CMDLINE\" --run-dir \"$RUN\" --config-root \"$CONFIG_ROOT\" \"$SYSROOT\"";

impl Drop for Fixture {
    fn drop(&mut self) {
        // ostree marks deployment directories immutable.
        if let Ok(dirs) = std::fs::read_dir(self.phys().join("ostree/deploy/testos/deploy")) {
            for d in dirs.flatten() {
                if d.path().is_dir() {
                    let _ = Command::new("chattr").arg("-i").arg(d.path()).status();
                }
            }
        }
        // A physical root on ext4 (on_ext4_with_verity): unmounted first.
        if self.dir.join("phys.ext4").exists() {
            let _ = Command::new("umount").arg("-l").arg(self.phys()).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Parse `key=value` lines.
pub fn report(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}
