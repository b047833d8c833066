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
