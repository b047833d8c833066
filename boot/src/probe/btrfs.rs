//! btrfs: the primary superblock at 64 KiB.

use super::bytes::ReadAt;
use super::bytes::{fs_uuid, le32, le64, read_exact, text};
use super::fstype::{FsType, Superblock};

/// The btrfs filesystem on `dev`, or `None`.
pub(super) fn probe<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
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
