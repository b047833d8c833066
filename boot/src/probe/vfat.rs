//! vfat (FAT12, FAT16, FAT32): the boot sector, and the volume label
//! entry of the root directory, which is what blkid calls `LABEL`.

use super::bytes::ReadAt;
use super::bytes::{byte, field, le16, le32, read_exact, text};
use super::fstype::{FsType, Superblock};

/// The parts of a FAT boot sector needed to find the root directory.
struct Fat {
    sector: u64,
    cluster_sectors: u64,
    /// The first sector after the FATs: the FAT12/16 root directory, or
    /// FAT32's cluster 2.
    fat_end: u64,
    root_entries: u64,
    fat_start: u64,
    /// FAT32: the root directory's first cluster.
    root_cluster: Option<u32>,
}

/// The FAT filesystem on `dev`, or `None` (also for an implausible boot
/// sector, such as an MBR or NTFS).
pub(super) fn probe<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    let bs = read_exact(dev, 0, 512).ok()??;
    if bs.get(510..512)? != [0x55, 0xAA] || !matches!(byte(&bs, 0)?, 0xEB | 0xE9) {
        return None;
    }
    let sector = le16(&bs, 11)?;
    let cluster = byte(&bs, 13)?;
    let reserved = le16(&bs, 14)?;
    let fats = byte(&bs, 16)?;
    let root_entries = le16(&bs, 17)?;
    let media = byte(&bs, 21)?;
    let total = match le16(&bs, 19)? {
        0 => le32(&bs, 32)?,
        n => u32::from(n),
    };
    if !matches!(sector, 512 | 1024 | 2048 | 4096)
        || !cluster.is_power_of_two()
        || reserved == 0
        || !(1..=4).contains(&fats)
        || (media != 0xF0 && media < 0xF8)
        || total == 0
    {
        return None;
    }
    // FAT32 has no 16-bit FAT size and no fixed root directory.
    let (fat_size, ext, root_cluster) = match le16(&bs, 22)? {
        0 => {
            let size = le32(&bs, 36)?;
            let root = le32(&bs, 44)?;
            if size == 0 || root_entries != 0 || root < 2 {
                return None;
            }
            (u64::from(size), 64, Some(root))
        }
        size => {
            if root_entries == 0 {
                return None;
            }
            (u64::from(size), 36, None)
        }
    };
    let fat_end = u64::from(reserved) + u64::from(fats) * fat_size;
    let root_sectors = (u64::from(root_entries) * 32).div_ceil(u64::from(sector));
    if fat_end + root_sectors >= u64::from(total) {
        return None;
    }
    // The serial number is there with either extended boot signature.
    let serial = match byte(&bs, ext + 2)? {
        0x28 | 0x29 => le32(&bs, ext + 3),
        _ => None,
    };
    let fat = Fat {
        sector: u64::from(sector),
        cluster_sectors: u64::from(cluster),
        fat_end,
        root_entries: u64::from(root_entries),
        fat_start: u64::from(reserved),
        root_cluster,
    };
    // Like blkid, the label is the root directory's volume label entry; the
    // boot sector's copy (blkid's LABEL_FATBOOT) is not used.
    let label = fat_root_label(dev, &fat);
    let uuid = serial.map(|s| {
        let [a, b, c, d] = s.to_le_bytes();
        format!("{d:02X}{c:02X}-{b:02X}{a:02X}")
    });
    Some(Superblock { fstype: FsType::Vfat, uuid, label })
}

enum DirScan {
    Label(Option<String>),
    End,
    More,
}

fn scan_dir(entries: &[u8]) -> DirScan {
    for e in entries.chunks_exact(32) {
        let Ok(e): Result<[u8; 32], _> = e.try_into() else { break };
        match (e[0], e[11]) {
            (0, _) => return DirScan::End,
            (0xE5, _) | (_, 0x0F) => {}
            (_, attr) if attr & 0x18 == 0x08 => {
                let mut name: [u8; 11] = field(&e, 0).unwrap_or([b' '; 11]);
                if name[0] == 0x05 {
                    name[0] = 0xE5;
                }
                return DirScan::Label(text(&name));
            }
            _ => {}
        }
    }
    DirScan::More
}

/// The volume label entry of a FAT root directory, if any. Bounded: at most
/// 2 MiB of directory is read, whatever the cluster chain says.
fn fat_root_label<R: ReadAt + ?Sized>(dev: &R, fat: &Fat) -> Option<String> {
    const MAX_DIR_BYTES: u64 = 2 << 20;
    let Some(mut cluster) = fat.root_cluster else {
        let start = fat.fat_end.checked_mul(fat.sector)?;
        let len = (fat.root_entries * 32).min(MAX_DIR_BYTES);
        let mut off = 0;
        while off < len {
            let chunk = read_exact(dev, start + off, fat.sector.min(len - off) as usize).ok()??;
            match scan_dir(&chunk) {
                DirScan::Label(l) => return l,
                DirScan::End => return None,
                DirScan::More => off += fat.sector,
            }
        }
        return None;
    };
    let cluster_bytes = fat.cluster_sectors.checked_mul(fat.sector)?;
    for _ in 0..(MAX_DIR_BYTES / cluster_bytes).max(1) {
        let index = u64::from(cluster).checked_sub(2)?;
        let at = fat.fat_end.checked_add(index.checked_mul(fat.cluster_sectors)?)?.checked_mul(fat.sector)?;
        match scan_dir(&read_exact(dev, at, usize::try_from(cluster_bytes).ok()?).ok()??) {
            DirScan::Label(l) => return l,
            DirScan::End => return None,
            DirScan::More => {}
        }
        let entry = fat.fat_start.checked_mul(fat.sector)?.checked_add(u64::from(cluster) * 4)?;
        let next = le32(&read_exact(dev, entry, 4).ok()??, 0)? & 0x0FFF_FFFF;
        if !(2..0x0FFF_FFF7).contains(&next) {
            return None;
        }
        cluster = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::probe_superblock;
    use crate::probe::test_support::{blkid, head, run, s, sparse, with};
    use rootstock_core::testutil::TempDir;
    use std::fs::File;
    use std::os::unix::fs::FileExt;

    #[test]
    fn vfat_boot_sector_sanity() {
        let t = TempDir::new();
        let img = t.path().join("fat.img");
        sparse(&img, 32);
        run("mkfs.vfat", &["-F", "16", "-n", "SANE", "-i", "11112222", s(&img)]);
        let sector = head(&img, 512);
        let good = probe_superblock(&sector).expect("an intact FAT16 boot sector is vfat");
        // (the label is in the root directory, which is not in these 512 bytes)
        assert_eq!((good.uuid.as_deref(), good.label), (Some("1111-2222"), None));
        let broken: &[(&str, usize, &[u8])] = &[
            ("no 55AA", 510, &[0, 0]),
            ("no jump", 0, &[0]),
            ("0 bytes per sector", 11, &[0, 0]),
            ("513 bytes per sector", 11, &[1, 2]),
            ("8192 bytes per sector", 11, &[0, 0x20]),
            ("0 sectors per cluster", 13, &[0]),
            ("3 sectors per cluster", 13, &[3]),
            ("no reserved sector", 14, &[0, 0]),
            ("no FAT", 16, &[0]),
            ("9 FATs", 16, &[9]),
            ("no root entries", 17, &[0, 0]),
            ("bad media", 21, &[0x12]),
            ("no sectors", 19, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("FATs larger than the volume", 22, &[0xFF, 0xFF]),
            ("NTFS-like", 3, b"NTFS    \0\x02\x08\0\0\0"),
        ];
        for (what, offset, bytes) in broken {
            assert_eq!(probe_superblock(&with(sector.clone(), *offset, bytes)), None, "{what}");
        }
    }

    #[test]
    fn fat32_root_directory_cycle_terminates() {
        let t = TempDir::new();
        let img = t.path().join("fat32.img");
        sparse(&img, 64);
        run("mkfs.vfat", &["-F", "32", "-s", "1", "-n", "CYCLE", "-i", "0BADF00D", s(&img)]);
        let bs = head(&img, 512);
        let (sector, reserved) = (le16(&bs, 11).unwrap() as u64, le16(&bs, 14).unwrap() as u64);
        let (fats, fat_size) = (bs[16] as u64, le32(&bs, 36).unwrap() as u64);
        let root = le32(&bs, 44).unwrap();
        let dir = (reserved + fats * fat_size + (root as u64 - 2)) * sector;
        // a full directory cluster with no label and no end marker, chained to itself
        let entries: Vec<u8> = (0..sector / 32)
            .flat_map(|_| *b"FILE    TXT\x20\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
            .collect();
        let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
        f.write_all_at(&entries, dir).unwrap();
        f.write_all_at(&root.to_le_bytes(), reserved * sector + u64::from(root) * 4).unwrap();
        // A hang is a failure too: probe in a thread and wait a bounded time.
        let (tx, rx) = std::sync::mpsc::channel();
        let f = File::open(&img).unwrap();
        std::thread::spawn(move || tx.send(probe_superblock(&f)));
        let sb =
            rx.recv_timeout(std::time::Duration::from_secs(20)).expect("probe did not terminate").unwrap();
        assert_eq!(sb.label, None, "no label entry in the (bounded) walk of the chain");
        assert_eq!(Some(sb), blkid(&img).1);
    }
}
