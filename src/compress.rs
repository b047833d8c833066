//! Compression of the initramfs archive.

use std::io::Write;

/// How the archive is compressed. The kernel also accepts xz, zstd, lz4 and
/// others when built with them; gzip is the one every kernel config has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Compression, String> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            _ => Err(format!("unknown compression {s:?}: expected gzip or none")),
        }
    }
}

/// Compress `data` deterministically: the gzip header carries no mtime and
/// no file name (flate2 with the pure-Rust miniz_oxide backend). Level 6,
/// gzip's default: level 9 takes four times as long to save under 1%.
pub fn compress(data: Vec<u8>, how: Compression) -> Vec<u8> {
    match how {
        Compression::None => data,
        Compression::Gzip => {
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::with_capacity(data.len() / 2), flate2::Compression::default());
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(&data);
            enc.finish().unwrap_or_default()
        }
    }
}
