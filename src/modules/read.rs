//! Reading a module file.

use std::io::Read;
use std::path::Path;

use rootstock_core::errno::Errno;

use super::decompress::decompress;
use super::error::{MAX_MODULE_SIZE, ModError};
use super::modinfo::{ModInfo, modinfo_from_elf};

/// Read a module file: its uncompressed contents and its `.modinfo`.
pub fn read_module(path: &Path) -> Result<(Vec<u8>, ModInfo), ModError> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_MODULE_SIZE as u64 + 1).read_to_end(&mut raw))
        .map_err(|e| ModError::Io { path: path.into(), errno: Errno::from_io(&e) })?;
    let bytes = decompress(path, raw)?;
    let info = modinfo_from_elf(&bytes, path)?;
    Ok((bytes, info))
}
