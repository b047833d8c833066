//! Module files compressed as `.ko.xz`, `.ko.zst` or `.ko.gz`, decompressed
//! in memory up to a size limit.

use std::io::Write;
use std::path::Path;

use super::error::{MAX_MODULE_SIZE, ModError};

/// A `Write` into memory that refuses to grow past a limit.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_MODULE_SIZE {
            return Err(std::io::Error::other(format!("larger than {} MiB", MAX_MODULE_SIZE >> 20)));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decompress a module file's contents by its name: `.ko.xz`, `.ko.zst`,
/// `.ko.gz`; anything else is returned as it is.
pub fn decompress(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, ModError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let err = |reason: String| ModError::Decompress { path: path.into(), reason };
    let mut out = Capped(Vec::new());
    if name.ends_with(".xz") {
        // lzma-rust2's decoder: about twice as fast as lzma-rs's on a
        // kernel's modules (trixie's are all .ko.xz).
        let mut dec = lzma_rust2::XzReader::new(&bytes[..], true);
        std::io::copy(&mut dec, &mut out).map_err(|e| err(format!("xz: {e}")))?;
    } else if name.ends_with(".zst") {
        let mut dec =
            ruzstd::decoding::StreamingDecoder::new(&bytes[..]).map_err(|e| err(format!("zstd: {e}")))?;
        std::io::copy(&mut dec, &mut out).map_err(|e| err(format!("zstd: {e}")))?;
    } else if name.ends_with(".gz") {
        let mut dec = flate2::read::MultiGzDecoder::new(&bytes[..]);
        std::io::copy(&mut dec, &mut out).map_err(|e| err(format!("gzip: {e}")))?;
    } else {
        return Ok(bytes);
    }
    Ok(out.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::fake_elf;

    #[test]
    fn compressed_modules() {
        let elf = fake_elf(&[(".modinfo", b"name=m\0alias=fs-m\0")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&elf).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &elf[..], &mut xz).unwrap();
        let zst = ruzstd::encoding::compress_to_vec(&elf[..], ruzstd::encoding::CompressionLevel::Fastest);
        let cases: &[(&str, &[u8])] =
            &[("m.ko", &elf), ("m.ko.gz", &gz), ("m.ko.xz", &xz), ("m.ko.zst", &zst)];
        for (name, bytes) in cases {
            assert_eq!(decompress(Path::new(name), bytes.to_vec()).unwrap(), elf, "{name}");
        }
        for (name, bytes) in &cases[1..] {
            let err = decompress(Path::new(name), elf.clone()).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{name}: cannot decompress")), "{err}");
            let truncated = decompress(Path::new(name), bytes[..bytes.len() / 2].to_vec());
            assert!(truncated.is_err(), "{name}");
        }
    }
}
