//! ext2, ext3 and ext4: the superblock at byte 1024.

use super::bytes::ReadAt;
use super::bytes::{fs_uuid, le16, le32, read_exact, text};
use super::fstype::{FsType, Superblock};

/// The ext2/3/4 filesystem on `dev`, or `None`; an external journal is none.
pub(super) fn probe<R: ReadAt + ?Sized>(dev: &R) -> Option<Superblock> {
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
