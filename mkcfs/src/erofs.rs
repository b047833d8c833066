//! An EROFS image writer (the on-disk format of Linux's fs/erofs/erofs_fs.h),
//! only what a composefs image needs: 4096-byte blocks, extended (64-byte)
//! inodes, inline xattrs, uncompressed directories and symlinks, and
//! regular files that store no data (chunk-based, every chunk a hole), whose
//! contents overlayfs finds through their `trusted.overlay.redirect` xattr.
//!
//! Layout: block 0 holds the superblock at byte 1024 and, right after it,
//! the inodes (`meta_blkaddr` 0, so the root's nid is 36 as with
//! mkfs.erofs); an inode never straddles a block boundary. Directory blocks
//! (and symlink targets too long to sit inline) follow in blocks of their
//! own.

use std::collections::BTreeMap;

const BLOCK: usize = 4096;
const BLKSZBITS: u8 = 12;
const SUPER_OFFSET: usize = 1024;
const SUPER_SIZE: usize = 128;
const MAGIC: u32 = 0xE0F5_E1E2;
/// `EROFS_FEATURE_INCOMPAT_CHUNKED_FILE`.
const FEATURE_INCOMPAT_CHUNKED_FILE: u32 = 0x4;
/// Inodes are addressed in units of 32 bytes (the nid).
const SLOT: usize = 32;
const INODE_SIZE: usize = 64;
const DIRENT_SIZE: usize = 12;
/// `EROFS_NAME_LEN`.
pub const NAME_MAX: usize = 255;
/// `EROFS_NULL_ADDR`: a chunk that is a hole.
const NULL_ADDR: u32 = u32::MAX;

/// `i_format`: bit 0 the inode version (1 = extended), bits 1..3 the data
/// layout.
const LAYOUT_FLAT_PLAIN: u16 = 0;
const LAYOUT_FLAT_INLINE: u16 = 2;
const LAYOUT_CHUNK_BASED: u16 = 4;
const INODE_EXTENDED: u16 = 1;

/// The xattr name prefix indexes (`EROFS_XATTR_INDEX_*`).
pub const XATTR_INDEX_TRUSTED: u8 = 4;

/// Metadata every inode has.
#[derive(Clone, Debug)]
pub struct Meta {
    /// `st_mode`, file type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub xattrs: Vec<Xattr>,
}

/// An extended attribute: the prefix index (`XATTR_INDEX_*`) and the name
/// after the prefix (`overlay.redirect` for `trusted.overlay.redirect`).
#[derive(Clone, Debug)]
pub struct Xattr {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

#[derive(Clone, Debug)]
pub enum Kind {
    /// Entries by name (no `.` or `..`), each the index of a node.
    Dir(BTreeMap<Vec<u8>, usize>),
    /// A regular file of this size storing no data.
    File {
        size: u64,
    },
    Symlink(Vec<u8>),
    /// A device, fifo or socket: its `new_encode_dev` device number.
    Special {
        rdev: u32,
    },
}

#[derive(Clone, Debug)]
pub struct Node {
    pub meta: Meta,
    pub kind: Kind,
}

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("name {0:?} is longer than {NAME_MAX} bytes")]
    NameTooLong(String),
    #[error("an xattr name or value is too long: {0:?}")]
    XattrTooLong(String),
    #[error("the image would be larger than EROFS's 2^32 blocks")]
    TooLarge,
    #[error("node {0} is a child of more than one directory, or the root's")]
    NotATree(usize),
}

fn align(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

fn xattr_entry_size(x: &Xattr) -> usize {
    align(4 + x.name.len() + x.value.len(), 4)
}

/// The ibody xattr area: a 12-byte header, then the entries, each padded to
/// 4 bytes; none at all without xattrs.
fn xattr_size(xattrs: &[Xattr]) -> usize {
    if xattrs.is_empty() { 0 } else { 12 + xattrs.iter().map(xattr_entry_size).sum::<usize>() }
}

/// A directory entry's file type (`EROFS_FT_*`, the kernel's `FT_*`).
fn file_type(mode: u32) -> u8 {
    match mode & 0o170000 {
        0o100000 => 1,
        0o040000 => 2,
        0o020000 => 3,
        0o060000 => 4,
        0o010000 => 5,
        0o140000 => 6,
        0o120000 => 7,
        _ => 0,
    }
}

/// For a file of `size` bytes: the chunk size in bits (one chunk for any
/// file up to 2^43 bytes) and how many chunks there are.
fn chunks(size: u64) -> (u32, u64) {
    let bits =
        (64 - size.saturating_sub(1).leading_zeros()).clamp(u32::from(BLKSZBITS), u32::from(BLKSZBITS) + 31);
    (bits, size.div_ceil(1 << bits))
}

/// Directory blocks for `entries` (sorted by name, `.` and `..` among
/// them): each block self-contained, its 12-byte dirents first, then their
/// names, unterminated. The last block is only as long as it is used.
fn dir_data(entries: &[(&[u8], u64, u8)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        let mut n = 0;
        let mut used = 0;
        while n < rest.len() && used + DIRENT_SIZE + rest[n].0.len() <= BLOCK {
            used += DIRENT_SIZE + rest[n].0.len();
            n += 1;
        }
        let (block, next) = rest.split_at(n);
        if !next.is_empty() {
            out.resize(align(out.len(), BLOCK), 0);
        }
        let start = out.len();
        let mut nameoff = DIRENT_SIZE * block.len();
        for (name, nid, ft) in block {
            out.extend_from_slice(&nid.to_le_bytes());
            out.extend_from_slice(&(nameoff as u16).to_le_bytes());
            out.push(*ft);
            out.push(0);
            nameoff += name.len();
        }
        for (name, _, _) in block {
            out.extend_from_slice(name);
        }
        debug_assert!(out.len() - start <= BLOCK);
        if !next.is_empty() {
            out.resize(start + BLOCK, 0);
        }
        rest = next;
    }
    out
}

/// Where each inode goes and what follows it.
struct Placed {
    offset: usize,
    layout: u16,
    /// Bytes right after the inode and its xattrs: the chunk map or the
    /// inline symlink target.
    tail_size: usize,
}

/// The image of the tree `nodes` (`nodes[0]` is the root directory).
pub fn write(nodes: &[Node]) -> Result<Vec<u8>, FormatError> {
    // Every node but the root is in exactly one directory.
    let mut parent = vec![None; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        if let Kind::Dir(entries) = &node.kind {
            for (name, &child) in entries {
                if name.len() > NAME_MAX {
                    return Err(FormatError::NameTooLong(String::from_utf8_lossy(name).into_owned()));
                }
                if child == 0 || parent[child].replace(i).is_some() {
                    return Err(FormatError::NotATree(child));
                }
            }
        }
    }
    parent[0] = Some(0);

    // Pass 1: where each inode goes.
    let mut placed = Vec::with_capacity(nodes.len());
    let mut pos = SUPER_OFFSET + SUPER_SIZE;
    for node in nodes {
        for x in &node.meta.xattrs {
            if x.name.len() > 255 || x.value.len() > usize::from(u16::MAX) {
                return Err(FormatError::XattrTooLong(String::from_utf8_lossy(&x.name).into_owned()));
            }
        }
        let head = INODE_SIZE + xattr_size(&node.meta.xattrs);
        let (layout, tail_size) = match &node.kind {
            Kind::File { size } if *size > 0 => {
                let (_, n) = chunks(*size);
                (LAYOUT_CHUNK_BASED, 4 * usize::try_from(n).map_err(|_| FormatError::TooLarge)?)
            }
            Kind::Symlink(target) if head + target.len() <= BLOCK => (LAYOUT_FLAT_INLINE, target.len()),
            _ => (LAYOUT_FLAT_PLAIN, 0),
        };
        let size = head + tail_size;
        pos = align(pos, SLOT);
        if size <= BLOCK && pos % BLOCK + size > BLOCK {
            pos = align(pos, BLOCK);
        }
        placed.push(Placed { offset: pos, layout, tail_size });
        pos += size;
    }
    let nid = |i: usize| (placed[i].offset / SLOT) as u64;

    // Pass 2: the data blocks (directories, long symlink targets) after
    // the inodes.
    let mut data_blocks: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut next_block = pos.div_ceil(BLOCK);
    let mut blkaddr = vec![0u32; nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let data = match (&node.kind, placed[i].layout) {
            (Kind::Dir(entries), _) => {
                let parent_nid = nid(parent[i].unwrap_or(0));
                let mut all: Vec<(&[u8], u64, u8)> = vec![(b".", nid(i), 2), (b"..", parent_nid, 2)];
                all.extend(
                    entries.iter().map(|(name, &c)| (&name[..], nid(c), file_type(nodes[c].meta.mode))),
                );
                all.sort_by(|a, b| a.0.cmp(b.0));
                dir_data(&all)
            }
            (Kind::Symlink(target), LAYOUT_FLAT_PLAIN) => target.clone(),
            _ => continue,
        };
        blkaddr[i] = u32::try_from(next_block).map_err(|_| FormatError::TooLarge)?;
        next_block += data.len().div_ceil(BLOCK);
        data_blocks.push((i, data));
    }
    let total = next_block * BLOCK;
    let blocks = u32::try_from(next_block).map_err(|_| FormatError::TooLarge)?;
    let mut img = vec![0u8; total];
    let mut sizes = vec![0u64; nodes.len()];
    for (i, data) in &data_blocks {
        let at = blkaddr[*i] as usize * BLOCK;
        img[at..at + data.len()].copy_from_slice(data);
        sizes[*i] = data.len() as u64;
    }

    // Pass 3: the inodes.
    for (i, node) in nodes.iter().enumerate() {
        let p = &placed[i];
        let meta = &node.meta;
        let (size, i_u, nlink) = match &node.kind {
            Kind::Dir(entries) => {
                let subdirs = entries.values().filter(|&&c| matches!(nodes[c].kind, Kind::Dir(_))).count();
                (sizes[i], blkaddr[i], 2 + subdirs as u32)
            }
            Kind::File { size } if *size > 0 => {
                // struct erofs_inode_chunk_info: the chunk size in bits
                // above the block size; no EROFS_CHUNK_FORMAT_INDEXES, so
                // the map is one __le32 block address per chunk.
                let (bits, _) = chunks(*size);
                (*size, bits - u32::from(BLKSZBITS), 1)
            }
            Kind::File { .. } => (0, 0, 1),
            Kind::Symlink(target) => (target.len() as u64, blkaddr[i], 1),
            Kind::Special { rdev } => (0, *rdev, 1),
        };
        let mut ino = Vec::with_capacity(INODE_SIZE + xattr_size(&meta.xattrs) + p.tail_size);
        let xattr_icount = if meta.xattrs.is_empty() { 0 } else { 1 + (xattr_size(&meta.xattrs) - 12) / 4 };
        ino.extend_from_slice(&(INODE_EXTENDED | p.layout << 1).to_le_bytes());
        ino.extend_from_slice(&(xattr_icount as u16).to_le_bytes());
        ino.extend_from_slice(&(meta.mode as u16).to_le_bytes());
        ino.extend_from_slice(&0u16.to_le_bytes());
        ino.extend_from_slice(&size.to_le_bytes());
        ino.extend_from_slice(&i_u.to_le_bytes());
        ino.extend_from_slice(&(i as u32 + 1).to_le_bytes());
        ino.extend_from_slice(&meta.uid.to_le_bytes());
        ino.extend_from_slice(&meta.gid.to_le_bytes());
        ino.extend_from_slice(&(meta.mtime as u64).to_le_bytes());
        ino.extend_from_slice(&meta.mtime_nsec.to_le_bytes());
        ino.extend_from_slice(&nlink.to_le_bytes());
        ino.extend_from_slice(&[0; 16]);
        debug_assert_eq!(ino.len(), INODE_SIZE);
        if !meta.xattrs.is_empty() {
            // struct erofs_xattr_ibody_header: no name filter, no shared
            // xattrs.
            ino.extend_from_slice(&[0; 12]);
            for x in &meta.xattrs {
                let start = ino.len();
                ino.push(x.name.len() as u8);
                ino.push(x.index);
                ino.extend_from_slice(&(x.value.len() as u16).to_le_bytes());
                ino.extend_from_slice(&x.name);
                ino.extend_from_slice(&x.value);
                ino.resize(start + xattr_entry_size(x), 0);
            }
        }
        match &node.kind {
            Kind::File { size } if *size > 0 => {
                for _ in 0..p.tail_size / 4 {
                    ino.extend_from_slice(&NULL_ADDR.to_le_bytes());
                }
            }
            Kind::Symlink(target) if p.layout == LAYOUT_FLAT_INLINE => ino.extend_from_slice(target),
            _ => {}
        }
        img[p.offset..p.offset + ino.len()].copy_from_slice(&ino);
    }

    // The superblock.
    let root_nid = u16::try_from(nid(0)).map_err(|_| FormatError::TooLarge)?;
    let sb = &mut img[SUPER_OFFSET..SUPER_OFFSET + SUPER_SIZE];
    sb[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    // checksum (4..8) and feature_compat (8..12): none.
    sb[12] = BLKSZBITS;
    sb[14..16].copy_from_slice(&root_nid.to_le_bytes());
    sb[16..24].copy_from_slice(&(nodes.len() as u64).to_le_bytes());
    sb[36..40].copy_from_slice(&blocks.to_le_bytes());
    // meta_blkaddr (40..44) and xattr_blkaddr (44..48): 0.
    sb[80..84].copy_from_slice(&FEATURE_INCOMPAT_CHUNKED_FILE.to_le_bytes());
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_cover_the_file_in_one_chunk() {
        assert_eq!(chunks(1), (12, 1));
        assert_eq!(chunks(4096), (12, 1));
        assert_eq!(chunks(4097), (13, 1));
        assert_eq!(chunks(1 << 20), (20, 1));
        assert_eq!(chunks((1 << 20) + 3), (21, 1));
        assert_eq!(chunks(1 << 43), (43, 1));
        assert_eq!(chunks((1 << 43) + 1), (43, 2));
    }

    #[test]
    fn directory_blocks_are_self_contained() {
        let names: Vec<Vec<u8>> =
            (0..400).map(|i| format!("file-with-a-longish-name-{i:04}").into_bytes()).collect();
        let entries: Vec<(&[u8], u64, u8)> = names.iter().map(|n| (&n[..], 40, 1)).collect();
        let data = dir_data(&entries);
        assert!(data.len() > BLOCK);
        let mut seen = 0;
        for block in data.chunks(BLOCK) {
            let nameoff0 = u16::from_le_bytes([block[8], block[9]]) as usize;
            assert_eq!(nameoff0 % DIRENT_SIZE, 0);
            let n = nameoff0 / DIRENT_SIZE;
            for k in 0..n {
                let off = u16::from_le_bytes([block[k * 12 + 8], block[k * 12 + 9]]) as usize;
                let end = if k + 1 < n {
                    u16::from_le_bytes([block[k * 12 + 20], block[k * 12 + 21]]) as usize
                } else {
                    off + block[off..].iter().position(|&b| b == 0).unwrap_or(block.len() - off)
                };
                assert_eq!(&block[off..end], &names[seen][..]);
                seen += 1;
            }
        }
        assert_eq!(seen, names.len());
    }
}
