//! The fs-verity file digest, computed in userspace as Linux does
//! (Documentation/filesystems/fsverity.rst): a SHA-256 Merkle tree over
//! 4096-byte blocks (the last one zero-padded), no salt; the digest is the
//! SHA-256 of the 256-byte `fsverity_descriptor` holding the tree's root
//! hash and the file's size.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

const BLOCK: usize = 4096;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Read into `buf` until it is full or the reader ends; how much was read.
fn read_block(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The root hash of a tree whose lowest level is `level` (the hashes of
/// the data blocks, at least one): each level packs the hashes of the one
/// below into zero-padded blocks, up to a single hash.
fn root_hash(mut level: Vec<u8>) -> [u8; 32] {
    while level.len() > 32 {
        let mut next = Vec::with_capacity(level.len().div_ceil(BLOCK) * 32);
        for chunk in level.chunks(BLOCK) {
            let mut block = [0; BLOCK];
            block[..chunk.len()].copy_from_slice(chunk);
            next.extend_from_slice(&sha256(&block));
        }
        level = next;
    }
    let mut root = [0; 32];
    root.copy_from_slice(&level);
    root
}

/// The fs-verity digest (SHA-256, 4096-byte blocks, no salt) of what `r`
/// reads, as `FS_IOC_MEASURE_VERITY` reports it once verity is enabled.
pub fn verity_digest(mut r: impl Read) -> io::Result<[u8; 32]> {
    let mut level = Vec::new();
    let mut size = 0u64;
    let mut block = [0; BLOCK];
    loop {
        let n = read_block(&mut r, &mut block)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        block[n..].fill(0);
        level.extend_from_slice(&sha256(&block));
        if n < BLOCK {
            break;
        }
    }
    // An empty file has no tree: its root hash is all zeros.
    let root = if size == 0 { [0; 32] } else { root_hash(level) };
    // struct fsverity_descriptor: version 1, FS_VERITY_HASH_ALG_SHA256,
    // log2 of the block size, salt size 0, 4 reserved bytes, the data size,
    // the root hash (64 bytes), the salt (32), 144 reserved.
    let mut desc = [0u8; 256];
    desc[..4].copy_from_slice(&[1, 1, 12, 0]);
    desc[8..16].copy_from_slice(&size.to_le_bytes());
    desc[16..48].copy_from_slice(&root);
    Ok(sha256(&desc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_hash_of_a_descriptor_with_no_tree() {
        let mut desc = [0u8; 256];
        desc[..4].copy_from_slice(&[1, 1, 12, 0]);
        assert_eq!(verity_digest(&b""[..]).unwrap(), sha256(&desc));
    }

    #[test]
    fn one_block_file_has_the_block_hash_as_root() {
        let data = vec![7u8; 100];
        let mut block = [0u8; BLOCK];
        block[..100].copy_from_slice(&data);
        let mut desc = [0u8; 256];
        desc[..4].copy_from_slice(&[1, 1, 12, 0]);
        desc[8..16].copy_from_slice(&100u64.to_le_bytes());
        desc[16..48].copy_from_slice(&sha256(&block));
        assert_eq!(verity_digest(&data[..]).unwrap(), sha256(&desc));
    }

    #[test]
    fn a_reader_that_returns_little_at_a_time_gives_the_same_digest() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(1000);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let data: Vec<u8> = (0..600_000u32).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(verity_digest(Trickle(&data)).unwrap(), verity_digest(&data[..]).unwrap());
    }
}
