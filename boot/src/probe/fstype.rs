//! What a superblock says: the filesystem type, its UUID and label.

use std::fmt;

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
