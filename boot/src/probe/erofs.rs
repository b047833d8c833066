//! erofs: the superblock at byte 1024.

use super::bytes::ReadAt;
use super::bytes::{byte, fs_uuid, le32, read_exact, text};
use super::fstype::{FsType, Superblock};

/// The erofs filesystem on `dev`, or `None`.
pub(super) fn probe<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
    let sb = read_exact(dev, 1024, 128).ok()??;
    if le32(&sb, 0)? != 0xE0F5_E1E2 || !(9..=16).contains(&byte(&sb, 12)?) {
        return None;
    }
    Some(Superblock { fstype: FsType::Erofs, uuid: fs_uuid(sb.get(48..64)?), label: text(sb.get(64..80)?) })
}
