//! A kernel image as arm64's `kexec_file_load` takes it: only a raw
//! `Image` (its `ARM\x64` magic at 0x38). Distributions ship `vmlinuz`
//! gzip-compressed (Ubuntu) or as an EFI zboot image (a PE binary that
//! decompresses itself under UEFI; Fedora), which the kernel refuses
//! (ENOEXEC). Both are unwrapped here, in memory and bounded, before the
//! load. (Debian 12's and 13's arm64 `vmlinuz` are raw `Image`s already.)
//!
//! Built into the arm64 programs only (and tested on any host).

/// Bytes of a kernel file read at most.
pub const INPUT_CAP: u64 = 128 << 20;
/// Bytes a kernel unwraps to at most (arm64 `Image`s are 30–60 MB).
pub const OUTPUT_CAP: usize = 256 << 20;
/// Where an arm64 `Image` carries its magic.
const ARM64_MAGIC_AT: usize = 0x38;
const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";

/// What a kernel file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// A raw arm64 `Image`, or anything else: loaded as it is.
    Raw,
    /// A gzip stream.
    Gzip,
    /// An EFI zboot image: its payload's place and compression.
    Zboot { offset: usize, size: usize, compression: String },
}

/// Why a kernel could not be unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    #[error("EFI zboot image compressed with {0}: only gzip is unwrapped (install an uncompressed Image)")]
    Unsupported(String),
    #[error("{0}")]
    Corrupt(&'static str),
    #[error("it unwraps to more than {OUTPUT_CAP} bytes")]
    TooBig,
}

fn le32(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(bytes)).ok()
}

/// Tell the format from the file's first bytes (the whole file is fine).
pub fn classify(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Format::Gzip;
    }
    // drivers/firmware/efi/libstub/zboot-header.S: "MZ", "zimg", the
    // payload's offset and size, two reserved words, the compression's name.
    if head.starts_with(b"MZ")
        && head.get(4..8) == Some(b"zimg")
        && let (Some(offset), Some(size)) = (le32(head, 8), le32(head, 12))
    {
        let name = head.get(24..56).unwrap_or_default();
        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
        let compression = String::from_utf8_lossy(&name[..end]).into_owned();
        return Format::Zboot { offset, size, compression };
    }
    Format::Raw
}

/// The raw `Image` inside `file`, or `None` when it is one already (or not
/// a format this knows: the kernel then says what it thinks of it).
pub fn unwrap(file: &[u8]) -> Result<Option<Vec<u8>>, UnwrapError> {
    let image = match classify(file) {
        Format::Raw => return Ok(None),
        Format::Gzip => gunzip(file)?,
        Format::Zboot { offset, size, compression } => {
            if compression != "gzip" {
                return Err(UnwrapError::Unsupported(compression));
            }
            let payload = offset
                .checked_add(size)
                .and_then(|end| file.get(offset..end))
                .ok_or(UnwrapError::Corrupt("EFI zboot payload beyond the end of the file"))?;
            gunzip(payload)?
        }
    };
    if image.get(ARM64_MAGIC_AT..ARM64_MAGIC_AT + 4) != Some(ARM64_MAGIC.as_slice()) {
        return Err(UnwrapError::Corrupt("unwrapped, but not an arm64 Image (no ARM\\x64 magic)"));
    }
    Ok(Some(image))
}

/// Inflate a gzip member (RFC 1952), at most [`OUTPUT_CAP`] bytes. The
/// member's trailer (CRC-32, size) must be the last 8 bytes of `data`: a
/// gzip file, or the payload of a gzip zboot image, which ends there.
fn gunzip(data: &[u8]) -> Result<Vec<u8>, UnwrapError> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let short = UnwrapError::Corrupt("gzip header cut short");
    if data.len() < 10 || data[..2] != [0x1f, 0x8b] || data[2] != 8 {
        return Err(UnwrapError::Corrupt("not a deflate gzip stream"));
    }
    let flags = data[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let n = data.get(at..at + 2).ok_or(short.clone())?;
        at += 2 + usize::from(u16::from_le_bytes([n[0], n[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = data.get(at..).ok_or(short.clone())?;
            at += rest.iter().position(|&c| c == 0).ok_or(short.clone())? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let deflate = data.get(at..).ok_or(short)?;
    let out = miniz_oxide::inflate::decompress_to_vec_with_limit(deflate, OUTPUT_CAP).map_err(|e| match e
        .status
    {
        miniz_oxide::inflate::TINFLStatus::HasMoreOutput => UnwrapError::TooBig,
        _ => UnwrapError::Corrupt("the gzip stream does not inflate"),
    })?;
    // The member's trailer ends the data: CRC-32 and size of what it holds.
    let trailer =
        data.len().checked_sub(8).filter(|&t| t >= at).ok_or(UnwrapError::Corrupt("no gzip trailer"))?;
    if le32(data, trailer) != usize::try_from(crc32(&out)).ok()
        || le32(data, trailer + 4) != Some(out.len() & 0xffff_ffff)
    {
        return Err(UnwrapError::Corrupt(
            "the gzip stream's checksum or size does not match what it inflates to",
        ));
    }
    Ok(out)
}

/// CRC-32 (IEEE 802.3, reflected), as gzip's trailer carries it.
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    !data.iter().fold(!0u32, |c, &b| table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A stand-in arm64 Image: its magic at 0x38, then some text.
    fn image() -> Vec<u8> {
        let mut v = vec![0u8; 64];
        v[ARM64_MAGIC_AT..ARM64_MAGIC_AT + 4].copy_from_slice(ARM64_MAGIC);
        v.extend(b"an arm64 kernel ".repeat(4096));
        v
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::GzBuilder::new().filename("Image").write(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// The layout of zboot-header.S around `payload`.
    fn zboot(payload: &[u8], compression: &str) -> Vec<u8> {
        let offset = 4096usize;
        let mut v = vec![0u8; offset];
        v[..2].copy_from_slice(b"MZ");
        v[4..8].copy_from_slice(b"zimg");
        v[8..12].copy_from_slice(&(offset as u32).to_le_bytes());
        v[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        v[24..24 + compression.len()].copy_from_slice(compression.as_bytes());
        v.extend(payload);
        v.extend(b"the rest of the PE image".repeat(8));
        v
    }

    #[test]
    fn crc32_is_gzips() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn a_raw_image_is_left_alone() {
        assert_eq!(classify(&image()), Format::Raw);
        assert_eq!(unwrap(&image()), Ok(None));
    }

    #[test]
    fn gzip_and_zboot_gzip_unwrap_to_the_image() {
        assert_eq!(unwrap(&gzip(&image())), Ok(Some(image())));
        let z = zboot(&gzip(&image()), "gzip");
        assert!(
            matches!(classify(&z), Format::Zboot { offset: 4096, ref compression, .. } if compression == "gzip")
        );
        assert_eq!(unwrap(&z), Ok(Some(image())));
    }

    #[test]
    fn what_cannot_be_unwrapped_says_why() {
        let z = zboot(b"(zstd bytes)", "zstd22");
        assert_eq!(unwrap(&z), Err(UnwrapError::Unsupported("zstd22".into())));
        let mut cut = zboot(&gzip(&image()), "gzip");
        cut.truncate(4096 + 40);
        assert!(matches!(unwrap(&cut), Err(UnwrapError::Corrupt(_))), "{:?}", unwrap(&cut));
        assert!(matches!(unwrap(&gzip(b"not a kernel")), Err(UnwrapError::Corrupt(_))));
        let mut bad = gzip(&image());
        bad[20] ^= 0xff;
        assert!(unwrap(&bad).is_err());
        assert!(matches!(unwrap(&[0x1f, 0x8b, 8, 0]), Err(UnwrapError::Corrupt(_))));
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        // 300 MB of zeros: a few hundred KB of gzip.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            e.write_all(&zeros).unwrap();
        }
        assert_eq!(unwrap(&e.finish().unwrap()), Err(UnwrapError::TooBig));
    }
}
