//! Every block device the kernel shows in sysfs, with what identifies it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use super::fstype::Superblock;
use super::gpt::GptError;
use super::superblock::probe_superblock;
use super::table::PartitionTable;

/// One block device, described for matching `root=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device node, e.g. `/dev/vda1`.
    pub path: PathBuf,
    /// `MAJ:MIN` from sysfs.
    pub devno: Option<(u32, u32)>,
    pub superblock: Option<Superblock>,
    pub partuuid: Option<String>,
    pub partlabel: Option<String>,
}

fn read_sys(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The node name in /dev: `DEVNAME` from uevent, else the sysfs name with
/// `!` meaning `/` (as in `cciss!c0d0`).
fn dev_name(sys: &Path, name: &str) -> String {
    read_sys(&sys.join("uevent"))
        .and_then(|u| u.lines().find_map(|l| l.strip_prefix("DEVNAME=").map(str::to_string)))
        .unwrap_or_else(|| name.replace('!', "/"))
}

fn read_table(path: &Path) -> PartitionTable {
    match File::open(path).map_err(GptError::Io).and_then(|f| PartitionTable::read(&f)) {
        Ok(t) => t,
        Err(e) => {
            log::warn!("{}: {e}", path.display());
            PartitionTable::Unknown
        }
    }
}

/// Describes every block device in `sys_class_block` (normally
/// `/sys/class/block`), whose nodes are in `dev_dir` (normally `/dev`).
///
/// Each disk's partition table is read once. Devices of size 0 (unused loop
/// devices, drives without a medium) are skipped. A disk with partitions gets
/// no superblock: its first sectors may still hold one from before it was
/// partitioned. A device that cannot be opened is listed without superblock.
pub fn scan_block_devices(sys_class_block: &Path, dev_dir: &Path) -> Vec<DeviceInfo> {
    let mut names: Vec<String> = match std::fs::read_dir(sys_class_block) {
        Ok(dir) => dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect(),
        Err(e) => {
            log::warn!("cannot list {}: {e}", sys_class_block.display());
            return Vec::new();
        }
    };
    names.sort();
    // (name, partition number and parent disk name)
    let devices: Vec<(String, Option<(u32, String)>)> = names
        .into_iter()
        .map(|name| {
            let sys = sys_class_block.join(&name);
            let number = read_sys(&sys.join("partition")).and_then(|n| n.parse().ok());
            // The sysfs entry of a partition sits in its disk's directory.
            let disk = || {
                let real = std::fs::canonicalize(&sys).ok()?;
                real.parent()?.file_name()?.to_str().map(str::to_string)
            };
            let part = number.and_then(|n| Some((n, disk()?)));
            (name, part)
        })
        .collect();
    let partitioned: HashSet<&str> =
        devices.iter().filter_map(|(_, p)| Some(p.as_ref()?.1.as_str())).collect();
    let mut tables: HashMap<&str, PartitionTable> = HashMap::new();
    let mut out = Vec::new();
    for (name, part) in &devices {
        let sys = sys_class_block.join(name);
        if read_sys(&sys.join("size")).as_deref() == Some("0") {
            continue;
        }
        let devno = read_sys(&sys.join("dev")).and_then(|d| {
            let (major, minor) = d.split_once(':')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        });
        let (partuuid, partlabel) = match part {
            Some((number, disk)) => tables
                .entry(disk)
                .or_insert_with(|| read_table(&dev_dir.join(dev_name(&sys_class_block.join(disk), disk))))
                .lookup(*number),
            None => (None, None),
        };
        let path = dev_dir.join(dev_name(&sys, name));
        let superblock = if partitioned.contains(name.as_str()) {
            None
        } else {
            File::open(&path).ok().and_then(|f| probe_superblock(&f))
        };
        if let Some(sb) = &superblock {
            log::debug!("{}: {} UUID={:?} LABEL={:?}", path.display(), sb.fstype, sb.uuid, sb.label);
        }
        out.push(DeviceInfo { path, devno, superblock, partuuid, partlabel });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::{FS_CASES, NAMES, P1, P2, P3, U1, head, make_fs, sgdisk_image};
    use crate::probe::{FsType, RootSpec};
    use rootstock_core::testutil::TempDir;
    use std::os::unix::fs::symlink;

    #[test]
    fn scan_fake_sysfs() {
        let t = TempDir::new();
        let (sys, dev) = (t.path().join("sys"), t.path().join("dev"));
        let class = sys.join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        std::fs::create_dir_all(dev.join("cciss")).unwrap();
        // name, sysfs dir below devices/, dev, partition, size, uevent DEVNAME
        let entries: &[(&str, &str, &str, &str, &str, bool)] = &[
            ("vda", "pci0/virtio1/block/vda", "254:0", "", "131072", true),
            ("vda1", "pci0/virtio1/block/vda/vda1", "254:1", "1", "16384", true),
            ("vda2", "pci0/virtio1/block/vda/vda2", "254:2", "2", "32768", true),
            ("vda3", "pci0/virtio1/block/vda/vda3", "254:3", "3", "79839", true),
            ("vdb", "pci0/virtio2/block/vdb", "254:16", "", "131072", true),
            ("vdb1", "pci0/virtio2/block/vdb/vdb1", "254:17", "1", "16384", true),
            ("loop0", "virtual/block/loop0", "7:0", "", "0", true),
            ("cciss!c0d0", "pci0/cciss/block/cciss!c0d0", "104:0", "", "8", false),
        ];
        for (name, dir, devno, part, size, uevent) in entries {
            let d = sys.join("devices").join(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("dev"), format!("{devno}\n")).unwrap();
            std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
            if !part.is_empty() {
                std::fs::write(d.join("partition"), format!("{part}\n")).unwrap();
            }
            if *uevent {
                std::fs::write(d.join("uevent"), format!("MAJOR=1\nMINOR=2\nDEVNAME={name}\n")).unwrap();
            }
            symlink(format!("../../devices/{dir}"), class.join(name)).unwrap();
        }
        // vda: GPT; vda1: FAT16; vda2: ext4; vda3: no node.
        std::fs::rename(sgdisk_image(&t, "gpt.img"), dev.join("vda")).unwrap();
        let case = |what: &str| FS_CASES.iter().find(|c| c.0.starts_with(what)).unwrap();
        std::fs::rename(make_fs(&t, 1, case("FAT16")), dev.join("vda1")).unwrap();
        std::fs::rename(make_fs(&t, 2, case("ext4")), dev.join("vda2")).unwrap();
        std::fs::write(dev.join("cciss/c0d0"), [0u8; 4096]).unwrap();
        // vdb: an MBR over the remains of an ext4 superblock; vdb1: xfs-less, empty.
        let mut vdb = head(&dev.join("vda2"), 4096);
        vdb[..512].fill(0);
        let mbr = [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0x20, 0x21, 0, 0x83, 0, 0, 0, 0, 8, 0, 0, 0, 8];
        vdb[440..440 + mbr.len()].copy_from_slice(&mbr);
        vdb[510..512].copy_from_slice(&[0x55, 0xAA]);
        std::fs::write(dev.join("vdb"), &vdb).unwrap();
        assert_eq!(
            probe_superblock(&vdb).map(|s| s.fstype),
            Some(FsType::Ext4),
            "the stale superblock is there"
        );
        std::fs::write(dev.join("vdb1"), [0u8; 4096]).unwrap();

        let found = scan_block_devices(&class, &dev);
        type Row<'a> = (String, Option<(u32, u32)>, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let summary: Vec<Row> = found
            .iter()
            .map(|d| {
                let path = d.path.strip_prefix(&dev).unwrap().display().to_string();
                let fs = d.superblock.as_ref().map(|s| s.fstype.name());
                (path, d.devno, fs, d.partuuid.as_deref(), d.partlabel.as_deref())
            })
            .collect();
        let p2 = P2.to_lowercase();
        let want: Vec<Row> = vec![
            ("cciss/c0d0".into(), Some((104, 0)), None, None, None),
            ("vda".into(), Some((254, 0)), None, None, None),
            ("vda1".into(), Some((254, 1)), Some("vfat"), Some(P1), Some("esp")),
            ("vda2".into(), Some((254, 2)), Some("ext4"), Some(&p2), Some("root")),
            ("vda3".into(), Some((254, 3)), None, Some(P3), Some(NAMES[2])),
            ("vdb".into(), Some((254, 16)), None, None, None),
            ("vdb1".into(), Some((254, 17)), None, Some("12345678-01"), None),
        ];
        assert_eq!(summary, want);

        let roots: &[(String, Option<&str>)] = &[
            (format!("UUID={}", U1.to_uppercase()), Some("vda2")),
            ("LABEL=rootfs".into(), Some("vda2")),
            (format!("PARTUUID={P2}"), Some("vda2")),
            ("PARTLABEL=esp".into(), Some("vda1")),
            ("UUID=1234-5678".into(), Some("vda1")),
            ("/dev/disk/by-partlabel/d\\xc3\\xa4t\\xc3\\xa4\\x20\\xe2\\x9c\\x93".into(), Some("vda3")),
            ("PARTUUID=12345678-01".into(), Some("vdb1")),
            ("254:2".into(), Some("vda2")),
            (dev.join("vda1").display().to_string(), Some("vda1")),
            ("LABEL=nothing".into(), None),
        ];
        for (arg, want) in roots {
            // (a Path spec must be in /dev, which the fake tree is not)
            let spec = if arg.starts_with('/') && !arg.starts_with("/dev/") {
                RootSpec::Path(arg.clone())
            } else {
                RootSpec::parse(arg).unwrap()
            };
            let got: Vec<_> = spec.find(&found).iter().map(|d| d.path.clone()).collect();
            assert_eq!(got, want.map(|w| dev.join(w)).into_iter().collect::<Vec<_>>(), "{arg}");
        }
    }
}
