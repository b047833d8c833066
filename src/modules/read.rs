//! Reading a module file.

use std::path::Path;

use super::decompress::decompress;
use super::error::{MAX_MODULE_SIZE, ModError};
use super::modinfo::{ModInfo, modinfo_from_elf};

/// Read a module file: its uncompressed contents and its `.modinfo`.
pub fn read_module(path: &Path) -> Result<(Vec<u8>, ModInfo), ModError> {
    // O_NONBLOCK, a regular file, at most MAX_MODULE_SIZE (a FIFO swapped
    // in after the tree was listed cannot block, a device is never read).
    let raw = rootstock_core::confine::read_file(path, MAX_MODULE_SIZE as u64)?;
    let bytes = decompress(path, raw)?;
    let info = modinfo_from_elf(&bytes, path)?;
    Ok((bytes, info))
}
