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

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Positional reads: a block device, an image file, or bytes in memory.
pub trait ReadAt {
    /// Reads up to `buf.len()` bytes at `offset`; 0 means the end of the device.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = self.get(start..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
}

impl ReadAt for Vec<u8> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.as_slice().read_at(buf, offset)
    }
}

/// Reads exactly `len` bytes at `offset`; `Ok(None)` when the device ends first.
fn read_exact<R: ReadAt + ?Sized>(dev: &R, offset: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0; len];
    let mut done = 0;
    while done < len {
        let pos = offset.checked_add(done as u64).ok_or(io::ErrorKind::InvalidInput)?;
        let Some(rest) = buf.get_mut(done..) else { break };
        match dev.read_at(rest, pos) {
            Ok(0) => return Ok(None),
            Ok(n) => done += n.min(len - done),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(buf))
}

fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn le16(b: &[u8], at: usize) -> Option<u16> {
    field(b, at).map(u16::from_le_bytes)
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    field(b, at).map(u32::from_le_bytes)
}
fn le64(b: &[u8], at: usize) -> Option<u64> {
    field(b, at).map(u64::from_le_bytes)
}
fn be16(b: &[u8], at: usize) -> Option<u16> {
    field(b, at).map(u16::from_be_bytes)
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    field(b, at).map(u32::from_be_bytes)
}
fn be64(b: &[u8], at: usize) -> Option<u64> {
    field(b, at).map(u64::from_be_bytes)
}
fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// A label as blkid shows it: up to the first NUL, trailing blanks removed;
/// `None` when empty.
fn text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(b.get(..end)?);
    let s = s.trim_end_matches(|c: char| c.is_ascii_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

fn hex_uuid(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// A filesystem UUID stored in byte order (ext, xfs, btrfs, erofs); `None`
/// when all zero, as blkid does.
fn fs_uuid(b: &[u8]) -> Option<String> {
    let b: [u8; 16] = b.try_into().ok()?;
    (b != [0; 16]).then(|| hex_uuid(&b))
}

/// A GUID as stored by UEFI: the first three groups are little-endian.
fn guid(b: [u8; 16]) -> String {
    let [a0, a1, a2, a3, b0, b1, c0, c1, rest @ ..] = b;
    let mut swapped = [0u8; 16];
    for (dst, src) in swapped.iter_mut().zip([a3, a2, a1, a0, b1, b0, c1, c0].into_iter().chain(rest)) {
        *dst = src;
    }
    hex_uuid(&swapped)
}

/// The filesystems PID 1 can find `root=` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsType {
    /// ext2, ext3 and ext4: all mounted with the ext4 driver.
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Erofs,
}

impl FsType {
    /// The kernel filesystem name to mount with.
    pub fn name(&self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
            FsType::Vfat => "vfat",
            FsType::Erofs => "erofs",
        }
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a filesystem's superblock says about it, formatted as blkid prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub fstype: FsType,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

/// Identifies the filesystem on `dev`, or `None` (no known filesystem, a
/// device too short, or a read error).
pub fn probe_superblock<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    probe_ext(dev)
        .or_else(|| probe_xfs(dev))
        .or_else(|| probe_btrfs(dev))
        .or_else(|| probe_erofs(dev))
        .or_else(|| probe_vfat(dev))
}

fn probe_ext<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    const INCOMPAT_JOURNAL_DEV: u32 = 0x0008;
    let sb = read_exact(dev, 1024, 1024).ok()??;
    if le16(&sb, 0x38)? != 0xEF53 {
        return None;
    }
    // An external journal has the same magic but is no filesystem.
    // s_log_block_size: 1 KiB << n, at most 64 KiB; s_blocks_count lo and hi
    let blocks = le32(&sb, 0x04)? | le32(&sb, 0x150)?;
    if le32(&sb, 0x60)? & INCOMPAT_JOURNAL_DEV != 0 || le32(&sb, 0x18)? > 6 || blocks == 0 {
        return None;
    }
    Some(Superblock {
        fstype: FsType::Ext4,
        uuid: fs_uuid(sb.get(0x68..0x78)?),
        label: text(sb.get(0x78..0x88)?),
    })
}

fn probe_xfs<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    let sb = read_exact(dev, 0, 512).ok()??;
    if sb.get(..4)? != b"XFSB" {
        return None;
    }
    let block = be32(&sb, 4)?;
    let sect = be16(&sb, 102)?;
    let inode = be16(&sb, 104)?;
    let sane = block.is_power_of_two()
        && (512..=65536).contains(&block)
        && u32::from(byte(&sb, 120)?) == block.trailing_zeros()
        && sect.is_power_of_two()
        && (512..=32768).contains(&sect)
        && u32::from(byte(&sb, 121)?) == sect.trailing_zeros()
        && inode.is_power_of_two()
        && (256..=2048).contains(&inode)
        && be32(&sb, 88)? > 0
        && be64(&sb, 8)? > 0;
    sane.then_some(())?;
    Some(Superblock { fstype: FsType::Xfs, uuid: fs_uuid(sb.get(32..48)?), label: text(sb.get(108..120)?) })
}

fn probe_btrfs<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    const SB_OFFSET: u64 = 0x10000;
    let sb = read_exact(dev, SB_OFFSET, 0x300).ok()??;
    if sb.get(0x40..0x48)? != b"_BHRfS_M" || le64(&sb, 0x30)? != SB_OFFSET {
        return None;
    }
    let sector = le32(&sb, 0x90)?;
    let node = le32(&sb, 0x94)?;
    if !sector.is_power_of_two() || !(512..=65536).contains(&sector) || !node.is_power_of_two() {
        return None;
    }
    Some(Superblock {
        fstype: FsType::Btrfs,
        uuid: fs_uuid(sb.get(0x20..0x30)?),
        label: text(sb.get(0x12b..0x22b)?),
    })
}

fn probe_erofs<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    let sb = read_exact(dev, 1024, 128).ok()??;
    if le32(&sb, 0)? != 0xE0F5_E1E2 || !(9..=16).contains(&byte(&sb, 12)?) {
        return None;
    }
    Some(Superblock { fstype: FsType::Erofs, uuid: fs_uuid(sb.get(48..64)?), label: text(sb.get(64..80)?) })
}

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

fn probe_vfat<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
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

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected), as GPT uses.
fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| CRC32_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8))
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
#[derive(Debug)]
pub enum GptError {
    Io(io::Error),
    /// No "EFI PART" signature at LBA 1, for 512- or 4096-byte sectors.
    NotFound,
    HeaderSize(u32),
    HeaderCrc {
        stored: u32,
        computed: u32,
    },
    HeaderLba(u64),
    EntrySize(u32),
    TooManyEntries {
        count: u32,
        size: u32,
    },
    EntriesLba(u64),
    Truncated {
        offset: u64,
        len: u64,
    },
    EntriesCrc {
        stored: u32,
        computed: u32,
    },
}

impl fmt::Display for GptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptError::Io(e) => write!(f, "cannot read the partition table: {e}"),
            GptError::NotFound => {
                f.write_str("no GPT: no \"EFI PART\" header at LBA 1 (512- or 4096-byte sectors)")
            }
            GptError::HeaderSize(n) => write!(f, "GPT header size {n} is not between 92 and the sector size"),
            GptError::HeaderCrc { stored, computed } => write!(
                f,
                "GPT header is corrupt: its CRC32 field is {stored:#010x}, its contents give {computed:#010x}"
            ),
            GptError::HeaderLba(n) => write!(f, "GPT header at LBA 1 says it is at LBA {n}"),
            GptError::EntrySize(n) => {
                write!(f, "GPT partition entry size {n} is not 128 times a power of two up to 4096")
            }
            GptError::TooManyEntries { count, size } => write!(
                f,
                "GPT claims {count} partition entries of {size} bytes, more than the \
                 {MAX_GPT_ENTRIES_BYTES} bytes read"
            ),
            GptError::EntriesLba(n) => write!(f, "GPT partition entries at LBA {n} are not after the header"),
            GptError::Truncated { offset, len } => {
                write!(f, "the disk ends before the GPT partition entries ({len} bytes at byte {offset})")
            }
            GptError::EntriesCrc { stored, computed } => write!(
                f,
                "GPT partition entries are corrupt: the header's CRC32 for them is {stored:#010x}, \
                 their contents give {computed:#010x}"
            ),
        }
    }
}

impl std::error::Error for GptError {}

impl From<io::Error> for GptError {
    fn from(e: io::Error) -> GptError {
        GptError::Io(e)
    }
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

/// What a whole disk's partition table says about its partitions' identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionTable {
    Gpt(Vec<GptPartition>),
    /// An MBR (DOS) table: the kernel's `PARTUUID` of partition N is
    /// `SSSSSSSS-NN` (disk signature, partition number in hex); no labels.
    Mbr {
        disk_signature: u32,
    },
    /// No table that gives partitions an identity.
    Unknown,
}

impl PartitionTable {
    /// Reads the GPT, or the MBR when there is no GPT header. A GPT header
    /// that is present but invalid is an error (it is not read as an MBR).
    pub fn read<R: ReadAt + ?Sized>(disk: &R) -> Result<PartitionTable, GptError> {
        match read_gpt(disk) {
            Ok(parts) => Ok(PartitionTable::Gpt(parts)),
            Err(GptError::NotFound) => Ok(read_mbr(disk)?),
            Err(e) => Err(e),
        }
    }

    /// `(PARTUUID, PARTLABEL)` of partition `number` (1-based).
    pub fn lookup(&self, number: u32) -> (Option<String>, Option<String>) {
        match self {
            PartitionTable::Gpt(parts) => match parts.iter().find(|p| p.number == number) {
                Some(p) => (Some(p.partuuid.clone()), Some(p.partlabel.clone()).filter(|l| !l.is_empty())),
                None => (None, None),
            },
            PartitionTable::Mbr { disk_signature } => {
                (Some(format!("{disk_signature:08x}-{number:02x}")), None)
            }
            PartitionTable::Unknown => (None, None),
        }
    }
}

fn read_mbr<R: ReadAt + ?Sized>(disk: &R) -> io::Result<PartitionTable> {
    let Some(s) = read_exact(disk, 0, 512)? else { return Ok(PartitionTable::Unknown) };
    let entries: Vec<&[u8]> = s.get(446..510).unwrap_or_default().chunks_exact(16).collect();
    let valid = s.get(510..512) == Some(&[0x55, 0xAA][..])
        && entries.iter().all(|e| matches!(e.first(), Some(0x00 | 0x80)))
        && entries.iter().any(|e| e.get(4).is_some_and(|&t| t != 0))
        && !entries.iter().any(|e| e.get(4) == Some(&0xEE));
    Ok(match le32(&s, 440) {
        Some(disk_signature) if valid => PartitionTable::Mbr { disk_signature },
        _ => PartitionTable::Unknown,
    })
}

/// A kernel `root=` value.
///
/// Accepted: `/dev/NAME`, a bare `NAME` (meaning `/dev/NAME`, as the kernel
/// does), `MAJ:MIN`, `UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=`, and the
/// udev paths `/dev/disk/by-{uuid,label,partuuid,partlabel}/X` (which do not
/// exist without udev, so they are read as the matching tag). Prefixes must be
/// upper case, as the kernel and systemd require: `uuid=...` is refused with a
/// message, so a command line that boots with rootstock also boots with
/// dracut. Refused too: the kernel's `PARTUUID=.../PARTNROFF=N`, old-style
/// hexadecimal device numbers and systemd's `gpt-auto`, `fstab`, `tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    Path(String),
    Uuid(String),
    Label(String),
    PartUuid(String),
    PartLabel(String),
    Devno(u32, u32),
}

type Tag = fn(String) -> RootSpec;
const TAGS: [(&str, &str, Tag); 4] = [
    ("UUID=", "/dev/disk/by-uuid/", RootSpec::Uuid),
    ("LABEL=", "/dev/disk/by-label/", RootSpec::Label),
    ("PARTUUID=", "/dev/disk/by-partuuid/", RootSpec::PartUuid),
    ("PARTLABEL=", "/dev/disk/by-partlabel/", RootSpec::PartLabel),
];

/// Undoes udev's `\xNN` escaping of `/dev/disk/by-*` names.
fn unescape_udev(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b.get(i..i + 2), hex) {
            (Some(b"\\x"), Some(x)) => {
                out.push(x);
                i += 4;
            }
            _ => {
                out.extend(b.get(i).copied());
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RootSpec {
    pub fn parse(s: &str) -> Result<RootSpec, String> {
        let err = |why: String| {
            Err(format!(
                "root={s}: {why} (rootstock accepts /dev/NAME, NAME, MAJ:MIN, UUID=, LABEL=, PARTUUID=, PARTLABEL=)"
            ))
        };
        if s.is_empty() {
            return err("no device given".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) && !s.contains('=') {
            return err("a device name cannot contain blanks".into());
        }
        for (prefix, dir, make) in TAGS {
            let tag = prefix.trim_end_matches('=');
            let value = match (s.strip_prefix(prefix), s.strip_prefix(dir)) {
                (Some(v), _) => v.to_string(),
                (None, Some(v)) => unescape_udev(v),
                (None, None) => {
                    if s.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix)) {
                        return err(format!(
                            "write {prefix} in upper case, as the kernel and systemd require"
                        ));
                    }
                    continue;
                }
            };
            if value.is_empty() {
                return err(format!("{tag} is empty"));
            }
            if tag == "PARTUUID" && value.contains("/PARTNROFF=") {
                return err(
                    "the kernel's /PARTNROFF= form is not supported; name the partition itself".into()
                );
            }
            if tag.ends_with("UUID") && !value.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return err(format!("{tag} {value:?} is not a UUID (hex digits and dashes)"));
            }
            return Ok(make(value));
        }
        if let Some(name) = s.strip_prefix("/dev/") {
            if name.is_empty() || name.ends_with('/') {
                return err("no device name after /dev/".into());
            }
            if name.starts_with("disk/") {
                return err(
                    "of /dev/disk/, only by-uuid, by-label, by-partuuid and by-partlabel work without udev"
                        .into(),
                );
            }
            return Ok(RootSpec::Path(s.to_string()));
        }
        if s.starts_with('/') {
            return err("a device path must be in /dev/".into());
        }
        if let Some((major, minor)) = s.split_once(':') {
            return match (major.parse(), minor.parse()) {
                (Ok(major), Ok(minor)) => Ok(RootSpec::Devno(major, minor)),
                _ => err("not a decimal MAJ:MIN device number".into()),
            };
        }
        if s.contains('=') {
            return err("unknown form".into());
        }
        if matches!(s, "gpt-auto" | "fstab" | "tmpfs" | "off") {
            return err("this systemd form is not supported by rootstock's PID 1".into());
        }
        if s.chars().all(|c| c.is_ascii_hexdigit()) {
            return err("hexadecimal device numbers are not supported; use MAJ:MIN".into());
        }
        Ok(RootSpec::Path(format!("/dev/{s}")))
    }

    /// Whether `d` is the device this names. UUIDs compare without regard to
    /// case, labels exactly, paths as strings.
    pub fn matches(&self, d: &DeviceInfo) -> bool {
        let sb = d.superblock.as_ref();
        match self {
            RootSpec::Path(p) => d.path.as_os_str() == p.as_str(),
            RootSpec::Uuid(u) => {
                sb.and_then(|s| s.uuid.as_deref()).is_some_and(|x| x.eq_ignore_ascii_case(u))
            }
            RootSpec::Label(l) => sb.and_then(|s| s.label.as_deref()) == Some(l.as_str()),
            RootSpec::PartUuid(u) => d.partuuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u)),
            RootSpec::PartLabel(l) => d.partlabel.as_deref() == Some(l.as_str()),
            RootSpec::Devno(major, minor) => d.devno == Some((*major, *minor)),
        }
    }

    /// Every device that matches, in the order given. More than one (cloned
    /// disks, multi-device btrfs) is the caller's to report.
    pub fn find<'a>(&self, devices: &'a [DeviceInfo]) -> Vec<&'a DeviceInfo> {
        devices.iter().filter(|d| self.matches(d)).collect()
    }
}

impl fmt::Display for RootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSpec::Path(p) => f.write_str(p),
            RootSpec::Uuid(v) => write!(f, "UUID={v}"),
            RootSpec::Label(v) => write!(f, "LABEL={v}"),
            RootSpec::PartUuid(v) => write!(f, "PARTUUID={v}"),
            RootSpec::PartLabel(v) => write!(f, "PARTLABEL={v}"),
            RootSpec::Devno(major, minor) => write!(f, "{major}:{minor}"),
        }
    }
}

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
    use rootstock_core::testutil::TempDir;
    use std::os::unix::fs::{FileExt, symlink};
    use std::process::Command;

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
    fn run_with(tool: &str, args: &[&str], input: &str) -> String {
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

    fn run(tool: &str, args: &[&str]) -> String {
        run_with(tool, args, "")
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    fn sparse(path: &Path, mib: u64) {
        File::create(path).unwrap().set_len(mib << 20).unwrap();
    }

    fn head(path: &Path, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        let n = ReadAt::read_at(&File::open(path).unwrap(), &mut buf, 0).unwrap();
        buf.truncate(n);
        buf
    }

    /// The oracle: `blkid -p -o export`, mapped onto a [`Superblock`].
    fn blkid(img: &Path) -> (String, Option<Superblock>) {
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

    const U1: &str = "3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
    const U2: &str = "00000000-0000-4000-8000-000000000001";
    const U3: &str = "a0b1c2d3-e4f5-4a6b-9c8d-7e6f5a4b3c2d";
    const U4: &str = "deadbeef-0000-4111-8222-333344445555";

    type Want = Option<(FsType, Option<&'static str>, Option<&'static str>)>;
    /// what, mkfs tool, arguments (`{img}`, `{dir}` replaced), image MiB (0:
    /// mkfs creates it), bytes to write afterwards, what blkid and probe see.
    type FsCase =
        (&'static str, &'static str, &'static [&'static str], u64, Option<(u64, &'static [u8])>, Want);

    const FS_CASES: &[FsCase] = &[
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

    fn make_fs(t: &TempDir, i: usize, &(_, mkfs, args, mib, patch, _): &FsCase) -> PathBuf {
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

    fn with(mut base: Vec<u8>, offset: usize, bytes: &[u8]) -> Vec<u8> {
        if base.len() < offset + bytes.len() {
            base.resize(offset + bytes.len(), 0);
        }
        base[offset..offset + bytes.len()].copy_from_slice(bytes);
        base
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
        // [u8] reads past the end are empty, not a panic
        assert_eq!(ReadAt::read_at(&[1u8, 2, 3][..], &mut [0; 4], u64::MAX).unwrap(), 0);
        assert_eq!(ReadAt::read_at(&[1u8, 2, 3][..], &mut [0; 4], 1).unwrap(), 2);
    }

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

    #[test]
    fn crc32_and_guid() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414F_A339);
        let esp =
            [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];
        assert_eq!(guid(esp), "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(fs_uuid(&[0; 16]), None);
    }

    const P1: &str = "11111111-2222-3333-4444-555555555555";
    const P2: &str = "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE";
    const P3: &str = "01234567-89ab-4cde-8f01-23456789abcd";
    const NAMES: [&str; 3] = ["esp", "root", "dätä ✓"];

    fn sgdisk_image(t: &TempDir, name: &str) -> PathBuf {
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

    #[test]
    fn root_spec_parse() {
        use RootSpec::*;
        let ok: &[(&str, RootSpec)] = &[
            ("/dev/vda2", Path("/dev/vda2".into())),
            ("/dev/mapper/root", Path("/dev/mapper/root".into())),
            ("vda2", Path("/dev/vda2".into())),
            ("8:1", Devno(8, 1)),
            ("UUID=ABCD-1234", Uuid("ABCD-1234".into())),
            ("UUID=3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", Uuid(U1.into())),
            ("LABEL=my root", Label("my root".into())),
            ("LABEL=a=b", Label("a=b".into())),
            ("PARTUUID=12345678-01", PartUuid("12345678-01".into())),
            ("PARTLABEL=root", PartLabel("root".into())),
            ("/dev/disk/by-uuid/3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", Uuid(U1.into())),
            ("/dev/disk/by-label/my\\x20root", Label("my root".into())),
            ("/dev/disk/by-partlabel/d\\xc3\\xa4t\\xc3\\xa4", PartLabel("dätä".into())),
            ("/dev/disk/by-partuuid/12345678-01", PartUuid("12345678-01".into())),
        ];
        for (arg, want) in ok {
            assert_eq!(RootSpec::parse(arg).as_ref(), Ok(want), "{arg}");
            if !arg.starts_with("/dev/disk/") && *arg != "vda2" {
                assert_eq!(want.to_string(), *arg);
            }
        }
        let bad: &[(&str, &str)] = &[
            ("", "no device"),
            ("uuid=3f1c2e4a", "upper case"),
            ("Label=root", "upper case"),
            ("partuuid=12345678-01", "upper case"),
            ("partlabel=x", "upper case"),
            ("UUID=", "empty"),
            ("/dev/disk/by-label/", "empty"),
            ("UUID=not-a-uuid!", "not a UUID"),
            ("PARTUUID=12345678-01/PARTNROFF=1", "PARTNROFF"),
            ("0801", "hexadecimal"),
            ("8:x", "MAJ:MIN"),
            ("8:1:2", "MAJ:MIN"),
            ("gpt-auto", "systemd"),
            ("/foo/bar", "/dev/"),
            ("/dev/", "no device name"),
            ("/dev/disk/by-id/virtio-root", "without udev"),
            ("FOO=bar", "unknown"),
            ("my disk", "blanks"),
        ];
        for (arg, why) in bad {
            let e = RootSpec::parse(arg).expect_err(arg);
            assert!(e.contains(why) && e.starts_with(&format!("root={arg}:")), "{arg}: {e}");
        }
    }

    fn device(path: &str, uuid: &str, label: &str, partuuid: &str, partlabel: &str) -> DeviceInfo {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        DeviceInfo {
            path: path.into(),
            devno: Some((254, 1)),
            superblock: Some(Superblock { fstype: FsType::Ext4, uuid: some(uuid), label: some(label) }),
            partuuid: some(partuuid),
            partlabel: some(partlabel),
        }
    }

    #[test]
    fn root_spec_matches() {
        let d = device("/dev/vda1", U1, "rootfs", "12345678-01", "root");
        let table: &[(&str, bool)] = &[
            ("/dev/vda1", true),
            ("vda1", true),
            ("/dev/vda2", false),
            ("254:1", true),
            ("254:2", false),
            ("UUID=3F1C2E4A-5B6D-4E7F-8A9B-0C1D2E3F4A5B", true),
            ("UUID=3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5c", false),
            ("LABEL=rootfs", true),
            ("LABEL=ROOTFS", false),
            ("PARTUUID=12345678-01", true),
            ("PARTUUID=12345678-02", false),
            ("PARTLABEL=root", true),
            ("PARTLABEL=Root", false),
        ];
        for (arg, want) in table {
            assert_eq!(RootSpec::parse(arg).unwrap().matches(&d), *want, "{arg}");
        }
        let bare = DeviceInfo { superblock: None, partuuid: None, partlabel: None, devno: None, ..d.clone() };
        for arg in ["UUID=3f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "LABEL=rootfs", "PARTLABEL=root", "254:1"] {
            assert!(!RootSpec::parse(arg).unwrap().matches(&bare), "{arg}");
        }
    }

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
