//! Identify a filesystem by trying each format.

use super::bytes::ReadAt;
use super::fstype::Superblock;
use super::{btrfs, erofs, ext4, vfat, xfs};

/// Identifies the filesystem on `dev`, or `None` (no known filesystem, a
/// device too short, or a read error).
pub fn probe_superblock<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    ext4::probe(dev)
        .or_else(|| xfs::probe(dev))
        .or_else(|| btrfs::probe(dev))
        .or_else(|| erofs::probe(dev))
        .or_else(|| vfat::probe(dev))
}
