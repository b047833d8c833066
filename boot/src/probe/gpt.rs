//! GPT: the primary header and its partition entries, both CRC-checked.

use std::io;

use rootstock_core::errno::Errno;

use super::bytes::ReadAt;
use super::bytes::{field, hex_uuid, le16, le32, le64, read_exact};
use super::crc32::crc32;

/// A GUID as stored by UEFI: the first three groups are little-endian.
fn guid(b: [u8; 16]) -> String {
    let [a0, a1, a2, a3, b0, b1, c0, c1, rest @ ..] = b;
    let mut swapped = [0u8; 16];
    for (dst, src) in swapped.iter_mut().zip([a3, a2, a1, a0, b1, b0, c1, c0].into_iter().chain(rest)) {
        *dst = src;
    }
    hex_uuid(&swapped)
}

/// One used entry of a GPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based, as the kernel numbers partitions (`vda1`).
    pub number: u32,
    /// The unique partition GUID, lowercase: blkid's `PARTUUID`.
    pub partuuid: String,
    /// The UTF-16LE partition name: blkid's `PARTLABEL`.
    pub partlabel: String,
    pub first_lba: u64,
    pub last_lba: u64,
}

/// The most bytes of partition entries read (the usual array is 16 KiB).
pub const MAX_GPT_ENTRIES_BYTES: u64 = 1 << 20;

/// Why a disk's GPT cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GptError {
    /// Reading the disk failed; the message names the errno.
    #[error("cannot read the partition table: {}", Errno::from_io(.0))]
    Io(#[from] io::Error),
    /// No "EFI PART" signature at LBA 1, for 512- or 4096-byte sectors.
    #[error("no GPT: no \"EFI PART\" header at LBA 1 (512- or 4096-byte sectors)")]
    NotFound,
    #[error("GPT header size {0} is not between 92 and the sector size")]
    HeaderSize(u32),
    #[error("GPT header is corrupt: its CRC32 field is {stored:#010x}, its contents give {computed:#010x}")]
    HeaderCrc { stored: u32, computed: u32 },
    #[error("GPT header at LBA 1 says it is at LBA {0}")]
    HeaderLba(u64),
    #[error("GPT partition entry size {0} is not 128 times a power of two up to 4096")]
    EntrySize(u32),
    #[error(
        "GPT claims {count} partition entries of {size} bytes, more than the {MAX_GPT_ENTRIES_BYTES} \
         bytes read"
    )]
    TooManyEntries { count: u32, size: u32 },
    #[error("GPT partition entries at LBA {0} are not after the header")]
    EntriesLba(u64),
    #[error("the disk ends before the GPT partition entries ({len} bytes at byte {offset})")]
    Truncated { offset: u64, len: u64 },
    #[error(
        "GPT partition entries are corrupt: the header's CRC32 for them is {stored:#010x}, their \
         contents give {computed:#010x}"
    )]
    EntriesCrc { stored: u32, computed: u32 },
}

/// Reads the primary GPT (512-byte sectors, else 4096) and returns its used
/// entries. Both CRC32s are checked. The backup GPT is not consulted.
pub fn read_gpt<R: ReadAt + ?Sized>(dev: &R) -> Result<Vec<GptPartition>, GptError> {
    for sector in [512u64, 4096] {
        let Some(header) = read_exact(dev, sector, sector as usize)? else { continue };
        if header.starts_with(b"EFI PART") {
            return parse_gpt(dev, sector, &header);
        }
    }
    Err(GptError::NotFound)
}

fn parse_gpt<R: ReadAt + ?Sized>(dev: &R, sector: u64, header: &[u8]) -> Result<Vec<GptPartition>, GptError> {
    let bad = || GptError::HeaderSize(0);
    let size = le32(header, 12).ok_or_else(bad)?;
    let mut h = match header.get(..size as usize) {
        Some(h) if size >= 92 => h.to_vec(),
        _ => return Err(GptError::HeaderSize(size)),
    };
    let stored = le32(&h, 16).ok_or_else(bad)?;
    h.get_mut(16..20).ok_or_else(bad)?.fill(0);
    let computed = crc32(&h);
    if stored != computed {
        return Err(GptError::HeaderCrc { stored, computed });
    }
    let my_lba = le64(&h, 24).ok_or_else(bad)?;
    if my_lba != 1 {
        return Err(GptError::HeaderLba(my_lba));
    }
    let lba = le64(&h, 72).ok_or_else(bad)?;
    let count = le32(&h, 80).ok_or_else(bad)?;
    let entry_size = le32(&h, 84).ok_or_else(bad)?;
    let entries_crc = le32(&h, 88).ok_or_else(bad)?;
    if !(128..=4096).contains(&entry_size) || !entry_size.is_power_of_two() {
        return Err(GptError::EntrySize(entry_size));
    }
    let len = u64::from(count) * u64::from(entry_size);
    if len > MAX_GPT_ENTRIES_BYTES {
        return Err(GptError::TooManyEntries { count, size: entry_size });
    }
    let offset = match lba.checked_mul(sector) {
        Some(o) if lba >= 2 => o,
        _ => return Err(GptError::EntriesLba(lba)),
    };
    let array = read_exact(dev, offset, len as usize)?.ok_or(GptError::Truncated { offset, len })?;
    let computed = crc32(&array);
    if computed != entries_crc {
        return Err(GptError::EntriesCrc { stored: entries_crc, computed });
    }
    let mut parts = Vec::new();
    for (number, e) in (1u32..).zip(array.chunks_exact(entry_size as usize)) {
        let type_guid: [u8; 16] = field(e, 0).unwrap_or_default();
        if type_guid == [0; 16] {
            continue;
        }
        let name: Vec<u16> =
            e.get(56..128).unwrap_or_default().chunks_exact(2).map(|c| le16(c, 0).unwrap_or(0)).collect();
        let name = name.split(|&c| c == 0).next().unwrap_or_default();
        parts.push(GptPartition {
            number,
            partuuid: guid(field(e, 16).unwrap_or_default()),
            partlabel: char::decode_utf16(name.iter().copied())
                .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect(),
            first_lba: le64(e, 32).unwrap_or(0),
            last_lba: le64(e, 40).unwrap_or(0),
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::test_support::{NAMES, P1, P2, P3, head, run, s, sgdisk_image, with};
    use crate::probe::{PartitionTable, probe_superblock};
    use rootstock_core::testutil::TempDir;
    use std::fs::File;
    use std::path::Path;

    #[test]
    fn error_messages() {
        let cases: &[(GptError, &str)] = &[
            (GptError::NotFound, "no GPT: no \"EFI PART\" header at LBA 1 (512- or 4096-byte sectors)"),
            (GptError::HeaderSize(91), "GPT header size 91 is not between 92 and the sector size"),
            (
                GptError::HeaderCrc { stored: 0xAB, computed: 0x1234_5678 },
                "GPT header is corrupt: its CRC32 field is 0x000000ab, its contents give 0x12345678",
            ),
            (GptError::HeaderLba(7), "GPT header at LBA 1 says it is at LBA 7"),
            (
                GptError::EntrySize(129),
                "GPT partition entry size 129 is not 128 times a power of two up to 4096",
            ),
            (
                GptError::TooManyEntries { count: 8193, size: 128 },
                "GPT claims 8193 partition entries of 128 bytes, more than the 1048576 bytes read",
            ),
            (GptError::EntriesLba(1), "GPT partition entries at LBA 1 are not after the header"),
            (
                GptError::Truncated { offset: 1024, len: 16384 },
                "the disk ends before the GPT partition entries (16384 bytes at byte 1024)",
            ),
            (
                GptError::EntriesCrc { stored: 1, computed: 2 },
                "GPT partition entries are corrupt: the header's CRC32 for them is 0x00000001, their \
                 contents give 0x00000002",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), *want);
            assert!(std::error::Error::source(e).is_none(), "{e:?}");
        }
        let io = GptError::from(io::Error::from_raw_os_error(Errno::IO.raw()));
        assert_eq!(io.to_string(), "cannot read the partition table: EIO 5 (Input/output error)");
        assert!(std::error::Error::source(&io).is_some(), "{io:?}");
        // std's own errors have no errno: the nearest one is named
        let eof = GptError::from(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert_eq!(eof.to_string(), "cannot read the partition table: EIO 5 (Input/output error)");
    }

    #[test]
    fn guid_byte_order() {
        let esp =
            [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
        assert_eq!(guid(esp), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    }

    fn sgdisk_info(img: &Path, n: u32) -> (String, String, u64, u64) {
        let out = run("sgdisk", &["-i", &n.to_string(), s(img)]);
        let get = |key: &str| {
            let line =
                out.lines().find_map(|l| l.strip_prefix(key)).unwrap_or_else(|| panic!("{key}: {out}"));
            line.trim().to_string()
        };
        let sector = |key: &str| get(key).split_whitespace().next().unwrap().parse().unwrap();
        let name = get("Partition name:");
        let name = name.trim_matches('\'').to_string();
        (get("Partition unique GUID:").to_lowercase(), name, sector("First sector:"), sector("Last sector:"))
    }

    #[test]
    fn gpt_matches_sgdisk() {
        let t = TempDir::new();
        let img = sgdisk_image(&t, "gpt.img");
        let parts = read_gpt(&File::open(&img).unwrap()).unwrap();
        assert_eq!(parts.len(), 3, "{parts:?}");
        for (p, (uuid, name)) in parts.iter().zip([P1, P2, P3].iter().zip(NAMES)) {
            let (o_uuid, o_name, first, last) = sgdisk_info(&img, p.number);
            assert_eq!((&p.partuuid, &p.partlabel, p.first_lba, p.last_lba), (&o_uuid, &o_name, first, last));
            assert_eq!((p.partuuid.as_str(), p.partlabel.as_str()), (uuid.to_lowercase().as_str(), name));
        }
        assert_eq!(parts.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(parts[0].first_lba, 2048);
        let table = PartitionTable::read(&File::open(&img).unwrap()).unwrap();
        assert_eq!(table.lookup(2), (Some(P2.to_lowercase()), Some("root".into())));
        assert_eq!(table.lookup(4), (None, None));
        // the protective MBR is not a filesystem
        assert_eq!(probe_superblock(&File::open(&img).unwrap()), None);

        // The same header and entries laid out for 4096-byte sectors.
        let bytes = head(&img, 1 << 20);
        let mut big = vec![0u8; 8192 + 16384];
        big[4096..4608].copy_from_slice(&bytes[512..1024]);
        big[8192..].copy_from_slice(&bytes[1024..1024 + 16384]);
        assert_eq!(read_gpt(&big).unwrap(), parts);
    }

    /// The sgdisk header with `edit` applied and its CRC recomputed.
    fn edited(bytes: &[u8], edit: impl Fn(&mut [u8])) -> Vec<u8> {
        let mut b = bytes.to_vec();
        let h = &mut b[512..1024];
        edit(h);
        let size = (le32(h, 12).unwrap() as usize).clamp(92, 512);
        h[16..20].fill(0);
        let crc = crc32(&h[..size]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn gpt_damage_is_reported() {
        let t = TempDir::new();
        let bytes = head(&sgdisk_image(&t, "gpt.img"), 1 << 20);
        let set = |at: usize, v: &'static [u8]| move |h: &mut [u8]| h[at..at + v.len()].copy_from_slice(v);
        let two = |h: &mut [u8]| {
            h[80..84].copy_from_slice(&2u32.to_le_bytes());
            h[88..92].copy_from_slice(&crc32(&bytes[1024..1280]).to_le_bytes());
        };
        // what, image, start of the Debug form of the result
        let cases: &[(&str, Vec<u8>, &str)] = &[
            ("header changed", with(bytes.clone(), 512 + 56, &[0xAB]), "Err(HeaderCrc"),
            ("entries changed", with(bytes.clone(), 1024 + 56, &[0xAB]), "Err(EntriesCrc"),
            ("no signature", with(bytes.clone(), 512, b"EFI PARX"), "Err(NotFound"),
            ("cut in the entries", bytes[..2000].to_vec(), "Err(Truncated { offset: 1024, len: 16384"),
            ("cut in the header", bytes[..600].to_vec(), "Err(NotFound"),
            ("header size 0", edited(&bytes, set(12, &[0, 0, 0, 0])), "Err(HeaderSize(0)"),
            ("header size 91", edited(&bytes, set(12, &[91, 0, 0, 0])), "Err(HeaderSize(91)"),
            ("header size 513", edited(&bytes, set(12, &[1, 2, 0, 0])), "Err(HeaderSize(513)"),
            ("my LBA 7", edited(&bytes, set(24, &[7])), "Err(HeaderLba(7)"),
            ("entries at LBA 1", edited(&bytes, set(72, &[1])), "Err(EntriesLba(1)"),
            ("entries at LBA 0", edited(&bytes, set(72, &[0])), "Err(EntriesLba(0)"),
            (
                "entries LBA overflows",
                edited(&bytes, set(72, &[0xFF; 8])),
                "Err(EntriesLba(18446744073709551615)",
            ),
            ("entries past the end", edited(&bytes, set(72, &[0, 0, 1])), "Err(Truncated"),
            (
                "u32::MAX entries",
                edited(&bytes, set(80, &[0xFF; 4])),
                "Err(TooManyEntries { count: 4294967295",
            ),
            ("8193 entries", edited(&bytes, set(80, &[1, 0x20, 0, 0])), "Err(TooManyEntries { count: 8193"),
            ("entry size 0", edited(&bytes, set(84, &[0; 4])), "Err(EntrySize(0)"),
            ("entry size 127", edited(&bytes, set(84, &[127, 0, 0, 0])), "Err(EntrySize(127)"),
            ("entry size 129", edited(&bytes, set(84, &[129, 0, 0, 0])), "Err(EntrySize(129)"),
            ("entry size 8192", edited(&bytes, set(84, &[0, 0x20, 0, 0])), "Err(EntrySize(8192)"),
            ("entry size u32::MAX", edited(&bytes, set(84, &[0xFF; 4])), "Err(EntrySize(4294967295)"),
            ("0 entries, CRC 0", edited(&bytes, set(80, &[0, 0, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0])), "Ok([])"),
            ("2 entries, their CRC", edited(&bytes, two), "Ok([GptPartition { number: 1,"),
        ];
        for (what, image, want) in cases {
            let r = read_gpt(image);
            assert!(format!("{r:?}").starts_with(want), "{what}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().len() > 30, "{what}: {e}");
            }
        }
    }
}
