//! Inputs that are FIFOs, devices or huge files (issue 10): every file
//! rootstock reads is opened O_NONBLOCK, must be a regular file and is read
//! with a size cap, so none of them hangs or exhausts memory. No root needed
//! (`--dry-run`); each run has a 20-second `timeout`, and exit 124 (the
//! timeout) is a hang.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn tmp() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("rootstock-fifo-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sysroot/boot/loader.1/entries")).unwrap();
    std::os::unix::fs::symlink("loader.1", d.join("sysroot/boot/loader")).unwrap();
    std::fs::create_dir_all(d.join("sysroot/ostree/deploy")).unwrap();
    std::fs::create_dir_all(d.join("run/rootstock")).unwrap();
    std::fs::create_dir_all(d.join("config")).unwrap();
    std::fs::write(d.join("cmdline"), "quiet").unwrap();
    d
}

fn fifo(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {}", p.display());
}

/// Run with a timeout; returns (exit code, stderr).
fn run(bin: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("timeout").arg("20").arg(bin).args(args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(code, 124, "{} {args:?} hung:\n{err}", bin.display());
    (code, err)
}

fn prepare(d: &Path, extra: &[&str]) -> (i32, String) {
    let s = |p: &str| d.join(p).display().to_string();
    let (cmdline, run_dir, config_root, sysroot) = (s("cmdline"), s("run"), s("config"), s("sysroot"));
    let mut args = vec!["prepare-root", "--dry-run", "--cmdline", &cmdline, "--run-dir", &run_dir];
    args.extend(["--config-root", &config_root]);
    args.extend(extra);
    args.push(&sysroot);
    run(&common::boot_binary(), &args)
}

#[test]
fn a_fifo_as_cmdline_is_an_error_not_a_hang() {
    let d = tmp();
    std::fs::remove_file(d.join("cmdline")).unwrap();
    fifo(&d.join("cmdline"));
    let (code, err) = prepare(&d, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
}

#[test]
fn dev_zero_as_cmdline_is_never_read() {
    let d = tmp();
    std::fs::remove_file(d.join("cmdline")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("cmdline")).unwrap();
    let (code, err) = prepare(&d, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("not a regular file (a character device)"), "{err}");
}

#[test]
fn a_fifo_as_config_is_an_error_not_a_hang() {
    let d = tmp();
    fifo(&d.join("conf"));
    let conf = d.join("conf").display().to_string();
    let (code, err) = prepare(&d, &["--config", &conf]);
    assert_ne!(code, 0);
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
}

#[test]
fn a_fifo_in_the_config_search_path_is_an_error_not_a_hang() {
    let d = tmp();
    fifo(&d.join("config/etc/rootstock/rootstock.conf"));
    let (code, err) = prepare(&d, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("rootstock.conf: not a regular file (a FIFO)"), "{err}");
}

#[test]
fn a_fifo_as_kexec_state_is_a_warning_not_a_hang() {
    let d = tmp();
    std::fs::write(d.join("cmdline"), "rootstock.kexeced=fallback").unwrap();
    fifo(&d.join("kexec-state"));
    let ks = d.join("kexec-state").display().to_string();
    let (_code, err) = prepare(&d, &["--kexec-state", &ks]);
    assert!(
        err.contains("not a regular file (a FIFO): refused: the first pass's request is not known"),
        "{err}"
    );
}

#[test]
fn a_fifo_as_a_bls_entry_does_not_block_prepare_root_or_status() {
    let d = tmp();
    fifo(&d.join("sysroot/boot/loader.1/entries/ostree-1-os.conf"));
    let (_code, err) = prepare(&d, &[]);
    assert!(err.contains("not a regular file (a FIFO)"), "{err}");
    let s = |p: &str| d.join(p).display().to_string();
    let host = PathBuf::from(env!("CARGO_BIN_EXE_rootstock"));
    let (_code, err) = run(&host, &["status", "--sysroot", &s("sysroot"), "--run-dir", &s("run")]);
    assert!(!err.contains("hung"), "{err}");
}

#[test]
fn a_fifo_as_the_state_file_does_not_block_status() {
    let d = tmp();
    fifo(&d.join("run/rootstock/state"));
    let s = |p: &str| d.join(p).display().to_string();
    let host = PathBuf::from(env!("CARGO_BIN_EXE_rootstock"));
    let (code, err) = run(&host, &["status", "--sysroot", &s("sysroot"), "--run-dir", &s("run")]);
    assert_eq!(code, 0, "{err}");
}

// `mkinitramfs --host` (issue 22): sysfs (or a captured copy), the mount
// table and the module tree are read as the physical root is.

const KVER: &str = "6.1.0-test";
const AHCI: &str = "devices/pci0000:00/0000:00:1f.2";
const SDA: &str = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda";
const MOUNT_SDA2: &str = "22 1 8:2 / / rw - ext4 /dev/sda2 rw\n";

/// A captured sysfs as the kernel lays it out (relative symlinks): an AHCI
/// controller whose driver has no module link (so its `uevent` and
/// `modules.alias` are read), disk sda, partition sda2; a mount table with
/// sda2 as `/`; a module tree with `modules.alias`.
fn host_tree() -> PathBuf {
    let d = tmp();
    let sys = d.join("sys");
    let w = |rel: &str, text: &str| {
        let p = sys.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let ln = |target: &str, rel: &str| {
        let p = sys.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    };
    w(
        &format!("{AHCI}/uevent"),
        "DRIVER=ahci\nMODALIAS=pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01\n",
    );
    std::fs::create_dir_all(sys.join("bus/pci/drivers/ahci")).unwrap();
    std::fs::create_dir_all(sys.join("module/ahci")).unwrap();
    ln("../../../bus/pci/drivers/ahci", &format!("{AHCI}/driver"));
    w(&format!("{SDA}/dev"), "8:0\n");
    w(&format!("{SDA}/sda2/dev"), "8:2\n");
    w(&format!("{SDA}/sda2/partition"), "2\n");
    let up = "../../devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda";
    ln(&format!("{up}/sda2"), "dev/block/8:2");
    ln(&format!("{up}/sda2"), "class/block/sda2");
    std::fs::write(d.join("mountinfo"), MOUNT_SDA2).unwrap();
    let m = d.join("modules").join(KVER);
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("modules.alias"), "alias pci:v00008086d00002922sv*sd*bc01sc06i01* ahci\n").unwrap();
    d
}

/// A device-mapper (or md) device dm-0 as the root: `virtual/block/dm-0`.
fn dm_root(d: &Path, sub: &str) -> PathBuf {
    let dm = d.join("sys/devices/virtual/block/dm-0");
    std::fs::create_dir_all(dm.join(sub)).unwrap();
    std::fs::write(dm.join("dev"), "253:0\n").unwrap();
    std::os::unix::fs::symlink("../../devices/virtual/block/dm-0", d.join("sys/dev/block/253:0")).unwrap();
    std::fs::write(d.join("mountinfo"), "22 1 253:0 / / rw - ext4 /dev/mapper/root rw\n").unwrap();
    dm
}

/// `rootstock mkinitramfs --host` on the tree `d`: (exit code, stdout + stderr).
fn host(d: &Path, extra: &[&str]) -> (i32, String) {
    let s = |p: &str| d.join(p).display().to_string();
    let (sys, mountinfo, modules, out) = (s("sys"), s("mountinfo"), s("modules"), s("out.img"));
    let mut args = vec!["mkinitramfs", "--host", "--sysfs", &sys, "--mountinfo", &mountinfo];
    args.extend(["--modules-dir", &modules, "--kver", KVER, "--firmware-dir", "none"]);
    args.extend(extra);
    args.push(&out);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_rootstock"));
    let o = Command::new("timeout").arg("20").arg(&bin).args(&args).output().unwrap();
    let code = o.status.code().unwrap_or(-1);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_ne!(code, 124, "mkinitramfs --host {args:?} hung:\n{text}");
    (code, text)
}

fn replace_with_fifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    fifo(p);
}

#[test]
fn host_reads_a_healthy_captured_tree() {
    let d = host_tree();
    let (_code, out) = host(&d, &[]);
    assert!(out.contains(&format!("host-only: root device /sys/{SDA}/sda2 (8:2), ext4")), "{out}");
    assert!(out.contains("driver ahci of /sys/devices/pci0000:00/0000:00:1f.2, by its modalias"), "{out}");
}

#[test]
fn host_a_fifo_as_mountinfo_is_an_error_not_a_hang() {
    let d = host_tree();
    replace_with_fifo(&d.join("mountinfo"));
    let (code, out) = host(&d, &[]);
    assert_ne!(code, 0);
    assert!(
        out.contains("host-only: ") && out.contains("mountinfo: not a regular file (a FIFO): refused"),
        "{out}"
    );
}

#[test]
fn host_a_fifo_as_a_devices_uevent_is_an_error_not_a_hang() {
    let d = host_tree();
    replace_with_fifo(&d.join("sys").join(AHCI).join("uevent"));
    let (code, out) = host(&d, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("0000:00:1f.2/uevent: not a regular file (a FIFO): refused"), "{out}");
}

#[test]
fn host_a_fifo_as_a_block_devices_dev_is_an_error_not_a_hang() {
    let d = host_tree();
    replace_with_fifo(&d.join("sys").join(SDA).join("sda2/dev"));
    let (code, out) = host(&d, &["--root-device", "sda2"]);
    assert_ne!(code, 0);
    assert!(out.contains("sda2/dev: not a regular file (a FIFO): refused"), "{out}");
    assert!(!out.contains("expected MAJ:MIN"), "{out}");
}

#[test]
fn host_a_fifo_as_dm_uuid_is_an_error_not_a_hang() {
    let d = host_tree();
    let dm = dm_root(&d, "dm");
    fifo(&dm.join("dm/uuid"));
    let (code, out) = host(&d, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("dm-0/dm/uuid: not a regular file (a FIFO): refused"), "{out}");
}

#[test]
fn host_a_fifo_as_md_level_is_an_error_not_a_hang() {
    let d = host_tree();
    let md = dm_root(&d, "md");
    fifo(&md.join("md/level"));
    let (code, out) = host(&d, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("dm-0/md/level: not a regular file (a FIFO): refused"), "{out}");
}

#[test]
fn host_a_fifo_as_modules_alias_is_an_error_not_a_hang() {
    let d = host_tree();
    replace_with_fifo(&d.join("modules").join(KVER).join("modules.alias"));
    let (code, out) = host(&d, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("modules.alias: not a regular file (a FIFO): refused"), "{out}");
}

#[test]
fn host_dev_zero_as_mountinfo_is_never_read() {
    let d = host_tree();
    std::fs::remove_file(d.join("mountinfo")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.join("mountinfo")).unwrap();
    let (code, out) = host(&d, &[]);
    assert_ne!(code, 0);
    assert!(out.contains("mountinfo: not a regular file (a character device): refused"), "{out}");
}

/// `uevent`, `dev` or `dm/uuid` linked to `/dev/zero` in a captured tree:
/// the link is resolved inside the tree, where it leads nowhere; an error,
/// never "built into the kernel" or "expected MAJ:MIN".
#[test]
fn host_dev_zero_links_in_a_captured_tree_are_errors() {
    let cases = [
        (format!("{AHCI}/uevent"), format!("{AHCI}/uevent"), &[][..]),
        (format!("{SDA}/sda2/dev"), "class/block/sda2/dev".to_string(), &["--root-device", "sda2"][..]),
    ];
    for (rel, shown, extra) in cases {
        let d = host_tree();
        let p = d.join("sys").join(&rel);
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let (code, out) = host(&d, extra);
        assert_ne!(code, 0, "{rel}: {out}");
        assert!(
            out.contains(&format!("{shown}: a symlink to \"/dev/zero\", which leads to nothing inside ")),
            "{rel}: {out}"
        );
        assert!(!out.contains("built into the kernel") && !out.contains("expected MAJ:MIN"), "{rel}: {out}");
    }
    let d = host_tree();
    let dm = dm_root(&d, "dm");
    std::os::unix::fs::symlink("../../../../../../../../../../dev/zero", dm.join("dm/uuid")).unwrap();
    let (code, out) = host(&d, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("dm-0/dm/uuid: a symlink or `..` on the way leads out of "), "{out}");
}

/// A dm `slaves/` chain 100,000 deep: an error naming the depth limit, not
/// a stack overflow.
#[test]
fn host_a_deep_slaves_chain_is_an_error_not_a_crash() {
    let d = host_tree();
    dm_root(&d, "dm");
    let block = d.join("sys/devices/virtual/block");
    for i in 0..100_000 {
        let dir = block.join(format!("dm-{i}"));
        std::fs::create_dir_all(dir.join("slaves")).unwrap();
        let next = format!("dm-{}", i + 1);
        std::os::unix::fs::symlink(format!("../../{next}"), dir.join("slaves").join(&next)).unwrap();
    }
    let (code, out) = host(&d, &[]);
    assert!(code > 0, "exit {code} (a signal is -1): {out}");
    assert!(out.contains("stacked more than 32 deep"), "{out}");
    // 100,000 directories: not left behind.
    let _ = std::fs::remove_dir_all(&d);
}
