//! Reading untrusted device bytes: positional reads ([`ReadAt`]), fields
//! read with bounds checks, and labels and UUIDs formatted as blkid prints
//! them.

use std::fmt::Write as _;
use std::fs::File;
use std::io;

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
pub(super) fn read_exact<R: ReadAt + ?Sized>(
    dev: &R,
    offset: u64,
    len: usize,
) -> io::Result<Option<Vec<u8>>> {
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

pub(super) fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
pub(super) fn le16(b: &[u8], at: usize) -> Option<u16> {
    field(b, at).map(u16::from_le_bytes)
}
pub(super) fn le32(b: &[u8], at: usize) -> Option<u32> {
    field(b, at).map(u32::from_le_bytes)
}
pub(super) fn le64(b: &[u8], at: usize) -> Option<u64> {
    field(b, at).map(u64::from_le_bytes)
}
pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    field(b, at).map(u16::from_be_bytes)
}
pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    field(b, at).map(u32::from_be_bytes)
}
pub(super) fn be64(b: &[u8], at: usize) -> Option<u64> {
    field(b, at).map(u64::from_be_bytes)
}
pub(super) fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// A label as blkid shows it: up to the first NUL, trailing blanks removed;
/// `None` when empty.
pub(super) fn text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(b.get(..end)?);
    let s = s.trim_end_matches(|c: char| c.is_ascii_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

pub(super) fn hex_uuid(b: &[u8; 16]) -> String {
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
pub(super) fn fs_uuid(b: &[u8]) -> Option<String> {
    let b: [u8; 16] = b.try_into().ok()?;
    (b != [0; 16]).then(|| hex_uuid(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_end_are_empty() {
        // [u8] reads past the end are empty, not a panic
        assert_eq!(ReadAt::read_at(&[1u8, 2, 3][..], &mut [0; 4], u64::MAX).unwrap(), 0);
        assert_eq!(ReadAt::read_at(&[1u8, 2, 3][..], &mut [0; 4], 1).unwrap(), 2);
    }

    #[test]
    fn an_all_zero_uuid_is_none() {
        assert_eq!(fs_uuid(&[0; 16]), None);
    }
}
