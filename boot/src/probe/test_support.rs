//! What the probe tests share: the tools they run (mkfs, sgdisk, blkid as
//! the oracle), the filesystems they make, and a GPT disk image.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rootstock_core::testutil::TempDir;

use super::bytes::ReadAt;
use super::fstype::{FsType, Superblock};

/// The Debian package of each tool the tests run (for CI).
fn package(tool: &str) -> &'static str {
    match tool {
        "mkfs.ext4" | "mkfs.ext2" => "e2fsprogs",
        "mkfs.xfs" => "xfsprogs",
        "mkfs.btrfs" => "btrfs-progs",
        "mkfs.vfat" => "dosfstools",
        "mkfs.erofs" => "erofs-utils",
        "sgdisk" => "gdisk",
        "sfdisk" => "fdisk",
        _ => "util-linux",
    }
}

/// Runs a tool the tests need, with `input` on its stdin; a missing tool
/// fails the test, naming the Debian package to install.
pub(super) fn run_with(tool: &str, args: &[&str], input: &str) -> String {
    let package = package(tool);
    let path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is missing: install the Debian package {package}"));
    let mut child = Command::new(&path)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(super) fn run(tool: &str, args: &[&str]) -> String {
    run_with(tool, args, "")
}

pub(super) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub(super) fn sparse(path: &Path, mib: u64) {
    File::create(path).unwrap().set_len(mib << 20).unwrap();
}

pub(super) fn head(path: &Path, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    let n = ReadAt::read_at(&File::open(path).unwrap(), &mut buf, 0).unwrap();
    buf.truncate(n);
    buf
}

/// The oracle: `blkid -p -o export`, mapped onto a [`Superblock`].
pub(super) fn blkid(img: &Path) -> (String, Option<Superblock>) {
    let out = run("blkid", &["-p", "-o", "export", s(img)]);
    let mut tags = HashMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once('=') {
            // export format escapes with backslashes
            let mut value = String::new();
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                value.extend(if c == '\\' { chars.next() } else { Some(c) });
            }
            tags.insert(k.to_string(), value);
        }
    }
    let ty = tags.get("TYPE").cloned().unwrap_or_default();
    let fstype = match ty.as_str() {
        "ext2" | "ext3" | "ext4" => Some(FsType::Ext4),
        "xfs" => Some(FsType::Xfs),
        "btrfs" => Some(FsType::Btrfs),
        "vfat" => Some(FsType::Vfat),
        "erofs" => Some(FsType::Erofs),
        _ => None,
    };
    let sb = fstype.map(|fstype| Superblock {
        fstype,
        uuid: tags.get("UUID").cloned(),
        label: tags.get("LABEL").cloned(),
    });
    (ty, sb)
}

pub(super) const U1: &str = "3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
pub(super) const U2: &str = "00000000-0000-4000-8000-000000000001";
pub(super) const U3: &str = "a0b1c2d3-e4f5-4a6b-9c8d-7e6f5a4b3c2d";
pub(super) const U4: &str = "deadbeef-0000-4111-8222-333344445555";

pub(super) type Want = Option<(FsType, Option<&'static str>, Option<&'static str>)>;
/// what, mkfs tool, arguments (`{img}`, `{dir}` replaced), image MiB (0:
/// mkfs creates it), bytes to write afterwards, what blkid and probe see.
pub(super) type FsCase =
    (&'static str, &'static str, &'static [&'static str], u64, Option<(u64, &'static [u8])>, Want);

pub(super) const FS_CASES: &[FsCase] = &[
    (
        "ext4",
        "mkfs.ext4",
        &["-F", "-q", "-L", "rootfs", "-U", U1, "{img}"],
        16,
        None,
        Some((FsType::Ext4, Some(U1), Some("rootfs"))),
    ),
    (
        "ext2, no label",
        "mkfs.ext2",
        &["-F", "-q", "-U", U2, "{img}"],
        8,
        None,
        Some((FsType::Ext4, Some(U2), None)),
    ),
    (
        "ext4, label with a blank",
        "mkfs.ext4",
        &["-F", "-q", "-L", "my root", "-U", U3, "{img}"],
        8,
        None,
        Some((FsType::Ext4, Some(U3), Some("my root"))),
    ),
    (
        "ext external journal (jbd) is no filesystem",
        "mkfs.ext4",
        &["-F", "-q", "-O", "journal_dev", "-U", U4, "{img}"],
        8,
        None,
        None,
    ),
    (
        "xfs",
        "mkfs.xfs",
        &["-q", "-f", "-L", "xroot", "-m", "uuid=a0b1c2d3-e4f5-4a6b-9c8d-7e6f5a4b3c2d", "{img}"],
        300,
        None,
        Some((FsType::Xfs, Some(U3), Some("xroot"))),
    ),
    (
        "btrfs",
        "mkfs.btrfs",
        &["-q", "-f", "-L", "broot", "-U", U4, "{img}"],
        128,
        None,
        Some((FsType::Btrfs, Some(U4), Some("broot"))),
    ),
    (
        "FAT12",
        "mkfs.vfat",
        &["-F", "12", "-n", "EFI12", "-i", "1234ABCD", "{img}"],
        8,
        None,
        Some((FsType::Vfat, Some("1234-ABCD"), Some("EFI12"))),
    ),
    (
        "vfat without label",
        "mkfs.vfat",
        &["-i", "CAFEF00D", "{img}"],
        16,
        None,
        Some((FsType::Vfat, Some("CAFE-F00D"), None)),
    ),
    // blkid's LABEL is the root directory entry, not the boot sector copy.
    (
        "FAT16 (other label in the boot sector)",
        "mkfs.vfat",
        &["-F", "16", "-n", "DIRLABEL", "-i", "12345678", "{img}"],
        32,
        Some((43, b"BOOTSECTOR ")),
        Some((FsType::Vfat, Some("1234-5678"), Some("DIRLABEL"))),
    ),
    (
        "FAT32 (other label in the boot sector)",
        "mkfs.vfat",
        &["-F", "32", "-n", "DIRLABEL", "-i", "12345678", "{img}"],
        64,
        Some((71, b"BOOTSECTOR ")),
        Some((FsType::Vfat, Some("1234-5678"), Some("DIRLABEL"))),
    ),
    (
        // mkfs.erofs 1.5 (Debian 12) has no -L: write volume_name directly.
        "erofs",
        "mkfs.erofs",
        &["-U", U2, "{img}", "{dir}"],
        0,
        Some((1024 + 64, b"erolabel")),
        Some((FsType::Erofs, Some(U2), Some("erolabel"))),
    ),
];

pub(super) fn make_fs(t: &TempDir, i: usize, &(_, mkfs, args, mib, patch, _): &FsCase) -> PathBuf {
    let img = t.path().join(format!("fs{i}.img"));
    let dir = t.path().join("content");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello"), "hello\n").unwrap();
    if mib > 0 {
        sparse(&img, mib);
    }
    let args: Vec<String> =
        args.iter().map(|a| a.replace("{img}", s(&img)).replace("{dir}", s(&dir))).collect();
    run(mkfs, &args.iter().map(String::as_str).collect::<Vec<_>>());
    if let Some((offset, bytes)) = patch {
        std::fs::OpenOptions::new().write(true).open(&img).unwrap().write_all_at(bytes, offset).unwrap();
    }
    img
}

pub(super) fn with(mut base: Vec<u8>, offset: usize, bytes: &[u8]) -> Vec<u8> {
    if base.len() < offset + bytes.len() {
        base.resize(offset + bytes.len(), 0);
    }
    base[offset..offset + bytes.len()].copy_from_slice(bytes);
    base
}

pub(super) const P1: &str = "11111111-2222-3333-4444-555555555555";
pub(super) const P2: &str = "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE";
pub(super) const P3: &str = "01234567-89ab-4cde-8f01-23456789abcd";
pub(super) const NAMES: [&str; 3] = ["esp", "root", "dätä ✓"];

pub(super) fn sgdisk_image(t: &TempDir, name: &str) -> PathBuf {
    let img = t.path().join(name);
    sparse(&img, 64);
    let args = [
        "-n",
        "1:2048:+8M",
        "-t",
        "1:ef00",
        "-c",
        &format!("1:{}", NAMES[0]),
        "-u",
        &format!("1:{P1}"),
        "-n",
        "2:0:+16M",
        "-c",
        &format!("2:{}", NAMES[1]),
        "-u",
        &format!("2:{P2}"),
        "-n",
        "3:0:0",
        "-c",
        &format!("3:{}", NAMES[2]),
        "-u",
        &format!("3:{P3}"),
        s(&img),
    ]
    .map(str::to_string);
    run("sgdisk", &args.iter().map(String::as_str).collect::<Vec<_>>());
    img
}
