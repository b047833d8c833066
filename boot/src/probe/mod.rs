//! Finding the root device without blkid or udev.
//!
//! PID 1 has no udev, so there is no `/dev/disk/by-*`. This module reads what
//! blkid would: filesystem superblocks (ext2/3/4, xfs, btrfs, erofs, vfat) and
//! partition tables (GPT; MBR only for its `PARTUUID`), and walks
//! `/sys/class/block` to describe every block device. Values are formatted as
//! `blkid` prints them, so `root=UUID=...` copied from `blkid` output matches.
//!
//! Device contents are untrusted: every field is read with bounds checks and
//! checked arithmetic. A short, empty or hostile device yields `None` or an
//! error, never a panic.
//!
//! One file per job: reading device bytes (`bytes.rs`), one file per
//! filesystem (`ext4.rs`, `xfs.rs`, `btrfs.rs`, `erofs.rs`, `vfat.rs`), the
//! partition tables (`gpt.rs` with `crc32.rs`, `mbr.rs`, and `table.rs`
//! choosing between them), `root=` (`root_spec.rs`) and the walk of sysfs
//! (`devices.rs`). `fstype.rs` names what a superblock says; `superblock.rs`
//! identifies a filesystem by trying each format.

mod btrfs;
mod bytes;
mod crc32;
mod devices;
mod erofs;
mod ext4;
mod fstype;
mod gpt;
mod mbr;
mod root_spec;
mod superblock;
mod table;
#[cfg(test)]
mod test_support;
mod vfat;
mod xfs;

pub use bytes::ReadAt;
pub use devices::{DeviceInfo, scan_block_devices};
pub use fstype::{FsType, Superblock};
pub use gpt::{GptError, GptPartition, MAX_GPT_ENTRIES_BYTES, read_gpt};
pub use root_spec::RootSpec;
pub use superblock::probe_superblock;
pub use table::PartitionTable;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::{FS_CASES, blkid, head, make_fs, with};
    use rootstock_core::testutil::TempDir;
    use std::fs::File;

    #[test]
    fn superblocks_match_blkid() {
        let t = TempDir::new();
        for (i, c) in FS_CASES.iter().enumerate() {
            let (what, want) = (c.0, c.5);
            let img = make_fs(&t, i, c);
            let want = want.map(|(fstype, uuid, label)| Superblock {
                fstype,
                uuid: uuid.map(str::to_string),
                label: label.map(str::to_string),
            });
            let (blkid_type, oracle) = blkid(&img);
            assert_eq!(
                oracle, want,
                "{}: blkid (TYPE={blkid_type}) disagrees with what mkfs was asked",
                what
            );
            let got = probe_superblock(&File::open(&img).unwrap());
            assert_eq!(got, want, "{}: probe_superblock differs from blkid", what);
            if let Some(sb) = &got {
                assert_eq!(sb.fstype.name(), sb.fstype.to_string());
            }

            // The same bytes from memory, and every truncation of them: no panic,
            // and nothing is found once the superblock is cut.
            let bytes = head(&img, 4 << 20);
            assert_eq!(probe_superblock(&bytes), got, "{}: from memory", what);
            let needed = match got.as_ref().map(|s| s.fstype) {
                Some(FsType::Ext4) => 2048,
                Some(FsType::Xfs | FsType::Vfat) => 512,
                Some(FsType::Btrfs) => 0x10300,
                Some(FsType::Erofs) => 1024 + 128,
                None => usize::MAX,
            };
            for cut in [0, 1, 511, 512, 1023, 1024, 1100, 1151, 1152, 2047, 2048, 65536, 0x102FF, 0x10300] {
                if cut > bytes.len() {
                    continue;
                }
                let found = probe_superblock(&bytes[..cut]).map(|s| (s.fstype, s.uuid));
                let want = (cut >= needed).then(|| got.clone().map(|s| (s.fstype, s.uuid))).flatten();
                assert_eq!(found, want, "{}: cut at {cut}", what);
            }
        }
    }

    fn random(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    #[test]
    fn hostile_inputs_are_not_filesystems() {
        let zero = vec![0u8; 200 << 10];
        let mut inputs: Vec<(String, Vec<u8>)> = vec![
            ("empty".into(), vec![]),
            ("one byte".into(), vec![0xEB]),
            ("511 bytes".into(), vec![0x55; 511]),
            ("zeros".into(), zero.clone()),
            ("ones".into(), vec![0xFF; 200 << 10]),
            ("ext magic only".into(), with(zero.clone(), 1024 + 0x38, &[0x53, 0xEF])),
            ("XFSB only".into(), with(zero.clone(), 0, b"XFSB")),
            ("btrfs magic only".into(), with(zero.clone(), 0x10040, b"_BHRfS_M")),
            ("erofs magic only".into(), with(zero.clone(), 1024, &0xE0F5_E1E2u32.to_le_bytes())),
            ("EFI PART only".into(), with(zero.clone(), 512, b"EFI PART")),
        ];
        for seed in 1..=8 {
            let r = random(200 << 10, seed);
            inputs.push((format!("random {seed}"), r.clone()));
            // random BPB behind a jump and a boot signature
            inputs.push((
                format!("random boot sector {seed}"),
                with(with(r, 0, &[0xEB, 0x3C, 0x90]), 510, &[0x55, 0xAA]),
            ));
        }
        for (what, bytes) in &inputs {
            assert_eq!(probe_superblock(bytes), None, "{what}");
            assert!(read_gpt(bytes).is_err(), "{what}");
            let _ = PartitionTable::read(bytes);
        }
    }
}
