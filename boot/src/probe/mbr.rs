//! MBR (DOS) partition tables: only the disk signature, from which the
//! kernel makes each partition's `PARTUUID`.

use std::io;

use super::bytes::ReadAt;
use super::bytes::{le32, read_exact};

/// The disk signature of a DOS partition table, or `None` when sector 0
/// holds none (no 55AA signature, a bad boot flag, no partition, or the
/// protective MBR of a GPT disk).
pub(super) fn read_mbr<R: ReadAt + ?Sized>(disk: &R) -> io::Result<Option<u32>> {
    let Some(s) = read_exact(disk, 0, 512)? else { return Ok(None) };
    let entries: Vec<&[u8]> = s.get(446..510).unwrap_or_default().chunks_exact(16).collect();
    let valid = s.get(510..512) == Some(&[0x55, 0xAA][..])
        && entries.iter().all(|e| matches!(e.first(), Some(0x00 | 0x80)))
        && entries.iter().any(|e| e.get(4).is_some_and(|&t| t != 0))
        && !entries.iter().any(|e| e.get(4) == Some(&0xEE));
    Ok(le32(&s, 440).filter(|_| valid))
}

#[cfg(test)]
mod tests {
    use crate::probe::test_support::{run, run_with, s, sparse};
    use crate::probe::{GptError, PartitionTable, probe_superblock, read_gpt};
    use rootstock_core::testutil::TempDir;
    use std::fs::File;

    #[test]
    fn mbr_partuuid_is_the_kernels() {
        let t = TempDir::new();
        let img = t.path().join("mbr.img");
        sparse(&img, 64);
        let script = "label: dos\nlabel-id: 0x12345678\n,8M\n,8M,L\n,+,E\n,4M\n";
        run_with("sfdisk", &["-q", s(&img)], script);
        let oracle = run("blkid", &["-p", "-o", "export", s(&img)]);
        assert!(oracle.contains("PTUUID=12345678") && oracle.contains("PTTYPE=dos"), "{oracle}");
        let f = File::open(&img).unwrap();
        assert!(matches!(read_gpt(&f), Err(GptError::NotFound)));
        let table = PartitionTable::read(&f).unwrap();
        assert_eq!(table, PartitionTable::Mbr { disk_signature: 0x1234_5678 });
        assert_eq!(table.lookup(1), (Some("12345678-01".into()), None));
        assert_eq!(table.lookup(5), (Some("12345678-05".into()), None));
        assert_eq!(probe_superblock(&f), None, "an MBR is not a vfat boot sector");
    }
}
