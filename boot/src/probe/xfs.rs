//! xfs: the superblock at byte 0, big-endian.

use super::bytes::ReadAt;
use super::bytes::{be16, be32, be64, byte, fs_uuid, read_exact, text};
use super::fstype::{FsType, Superblock};

/// The xfs filesystem on `dev`, or `None` (also for an implausible geometry).
pub(super) fn probe<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
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
