//! Compression of the initramfs archive, and the choice of a method the
//! target kernel can unpack.
//!
//! Every encoder is pure Rust: gzip by flate2 over miniz_oxide, zstd by
//! ruzstd, xz by lzma-rust2. Each output is deterministic (no time stamps,
//! no file names) and in the form the kernel's decompressors accept: xz with
//! a CRC32 check (the kernel's XZ decoder may lack CRC64), zstd as one frame.

use std::io::Write;
use std::path::{Path, PathBuf};

/// How the archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
}

impl Compression {
    /// Every method, in the order `--compress` lists them.
    pub const ALL: [Compression; 4] =
        [Compression::Zstd, Compression::Xz, Compression::Gzip, Compression::None];

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }

    /// The kernel option that lets it unpack an initramfs compressed so
    /// (`None` needs none).
    pub fn kernel_option(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("CONFIG_RD_GZIP"),
            Compression::Zstd => Some("CONFIG_RD_ZSTD"),
            Compression::Xz => Some("CONFIG_RD_XZ"),
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Compression, String> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown compression {s:?}: expected zstd, xz, gzip or none"))
    }
}

/// The order in which the default is chosen among what the kernel can
/// unpack. zstd first: on the QEMU set its image is 23% smaller than gzip's
/// at about the same boot time, and 12% larger than xz's, which the kernel
/// unpacks 2.4 times slower (0.50 against 0.21 s under QEMU's emulation;
/// docs/benchmarks.md); xz when the kernel has no zstd; gzip, which every
/// distribution kernel has, last.
pub const PREFERENCE: [Compression; 3] = [Compression::Zstd, Compression::Xz, Compression::Gzip];

/// The initramfs methods a kernel configuration (`.config` text) enables:
/// `CONFIG_RD_*=y` lines.
pub fn enabled_in_config(config: &str) -> Vec<Compression> {
    let on: Vec<&str> = config.lines().filter_map(|l| l.trim().strip_suffix("=y")).collect();
    Compression::ALL.into_iter().filter(|c| c.kernel_option().is_some_and(|opt| on.contains(&opt))).collect()
}

/// Where the configuration of kernel `kver` is looked for, first found wins:
/// `<modules_dir>/<kver>/config` (Fedora, Arch), `/boot/config-<kver>` of
/// the same root as the modules (`<modules_dir>/../../boot`, which is /boot
/// for /lib/modules), and `/boot/config-<kver>`.
pub fn config_candidates(modules_dir: &Path, kver: &str) -> Vec<PathBuf> {
    let mut c = vec![modules_dir.join(kver).join("config")];
    if let Some(root) = modules_dir.parent().and_then(Path::parent) {
        c.push(root.join("boot").join(format!("config-{kver}")));
    }
    let host = PathBuf::from(format!("/boot/config-{kver}"));
    if !c.contains(&host) {
        c.push(host);
    }
    c
}

/// The default method for kernel `kver` and why: the first of
/// [`PREFERENCE`] its configuration enables; gzip when no configuration is
/// found or it enables none of them.
pub fn default_for_kernel(modules_dir: &Path, kver: &str) -> (Compression, String) {
    for path in config_candidates(modules_dir, kver) {
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let enabled = enabled_in_config(&text);
        return match PREFERENCE.into_iter().find(|c| enabled.contains(c)) {
            Some(c) => (c, format!("{} in {}", c.kernel_option().unwrap_or_default(), path.display())),
            None => (Compression::Gzip, format!("{} enables none of zstd, xz, gzip", path.display())),
        };
    }
    (Compression::Gzip, format!("no kernel config found for {kver}"))
}

/// zstd's level: 19, as far as zstd goes without `--ultra`. On the QEMU
/// set it gives 1.68 MB where 12 gives 1.83 MB and 3 gives 2.1 MB, in about
/// 9 s against 1.4 s (2-core machine); the kernel unpacks every level at
/// about the same speed.
pub const ZSTD_LEVEL: u8 = 19;

/// Compress `data`. Deterministic: the same input gives the same bytes.
///
/// - gzip: level 6 (gzip's default; 9 takes four times as long to save
///   under 1%), no mtime, no file name.
/// - zstd: [`ZSTD_LEVEL`], one frame (zstd-complete).
/// - xz: LZMA2 preset 6, CRC32, one block (lzma-rust2).
///
/// zstd and xz come from young encoders: their output is decoded again by
/// an independent decoder (ruzstd, lzma-rs) and compared with `data`, so a
/// bad image is an error here, never a kernel that cannot unpack it.
pub fn compress(data: Vec<u8>, how: Compression) -> Result<Vec<u8>, String> {
    let packed = match how {
        Compression::None => return Ok(data),
        Compression::Gzip => {
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::with_capacity(data.len() / 2), flate2::Compression::default());
            enc.write_all(&data).map_err(|e| format!("gzip: {e}"))?;
            return enc.finish().map_err(|e| format!("gzip: {e}"));
        }
        Compression::Zstd => zstd(&data)?,
        Compression::Xz => xz(&data)?,
    };
    let unpacked = decompress(&packed, how)?;
    if unpacked != data {
        return Err(format!(
            "the {how} encoder's output unpacks to {} bytes that differ from the {} packed",
            unpacked.len(),
            data.len()
        ));
    }
    Ok(packed)
}

fn zstd(data: &[u8]) -> Result<Vec<u8>, String> {
    use zstd_complete::encoding::{CompressionLevel, EncoderOptions, encode_all};
    let level = CompressionLevel::new(ZSTD_LEVEL).map_err(|e| format!("zstd: {e:?}"))?;
    // One frame for the whole archive (the encoder cuts 8 MiB frames by
    // default), and the memory that takes.
    let frame = data.len().max(1).next_power_of_two();
    let opts = EncoderOptions::new(level).with_frame_chunk_size(frame).with_memory_limit(usize::MAX);
    encode_all(data, opts).map_err(|e| format!("zstd: {e:?}"))
}

fn xz(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut o = lzma_rust2::XzOptions::with_preset(6);
    // The kernel's XZ decoder checks CRC32; CRC64 only when built with it.
    o.set_check_sum_type(lzma_rust2::CheckType::Crc32);
    // No larger dictionary than the data: the kernel allocates it to unpack.
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX).max(4096).next_power_of_two();
    o.lzma_options.dict_size = o.lzma_options.dict_size.min(len);
    let mut enc =
        lzma_rust2::XzWriter::new(Vec::with_capacity(data.len() / 4), o).map_err(|e| format!("xz: {e}"))?;
    enc.write_all(data).map_err(|e| format!("xz: {e}"))?;
    enc.finish().map_err(|e| format!("xz: {e}"))
}

/// Unpack what [`compress`] made (the check after compressing; tests).
pub fn decompress(packed: &[u8], how: Compression) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::new();
    match how {
        Compression::None => out.extend_from_slice(packed),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(packed).read_to_end(&mut out).map_err(|e| format!("gzip: {e}"))?;
        }
        Compression::Zstd => {
            let mut dec =
                ruzstd::decoding::StreamingDecoder::new(packed).map_err(|e| format!("zstd: {e}"))?;
            dec.read_to_end(&mut out).map_err(|e| format!("zstd: {e}"))?;
        }
        Compression::Xz => {
            lzma_rs::xz_decompress(&mut &packed[..], &mut out).map_err(|e| format!("xz: {e:?}"))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootstock_core::testutil::run_piped;
    use std::process::Command;

    /// Something like an initramfs: text, repeated binary, noise.
    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..2000u32 {
            v.extend_from_slice(format!("lib/modules/6.1.0/kernel/drivers/block/m{i}.ko\n").as_bytes());
            v.extend_from_slice(&i.to_le_bytes().repeat(7));
        }
        let mut x = 0x2545_f491_u32;
        v.extend((0..20_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        }));
        v
    }

    #[test]
    fn names() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>(), Ok(c));
            assert_eq!(c.to_string(), c.name());
        }
        let err = "lz4".parse::<Compression>().unwrap_err();
        assert_eq!(err, "unknown compression \"lz4\": expected zstd, xz, gzip or none");
    }

    /// Each method round-trips through the standard tool, which checks the
    /// integrity (CRC32 for xz, the frame for zstd), and is deterministic.
    #[test]
    fn the_standard_tools_read_it_back() {
        let data = sample();
        for (how, tool) in [(Compression::Gzip, "gzip"), (Compression::Zstd, "zstd"), (Compression::Xz, "xz")]
        {
            if Command::new(tool).arg("--version").output().is_err() {
                eprintln!("no {tool}: skipping its round trip");
                continue;
            }
            let packed = compress(data.clone(), how).unwrap();
            assert_eq!(compress(data.clone(), how).unwrap(), packed, "{how} is not deterministic");
            assert_eq!(decompress(&packed, how).unwrap(), data, "{how}");
            assert!(packed.len() < data.len() / 2, "{how}: {} of {}", packed.len(), data.len());
            assert_eq!(run_piped(Command::new(tool).arg("-dc"), &packed), data, "{how}");
            if how == Compression::Xz {
                // The stream flags after the magic: check type 1, CRC32.
                assert_eq!(packed[6..8], [0, 1], "xz check type");
            }
        }
        assert_eq!(compress(data.clone(), Compression::None).unwrap(), data);
        // Tiny and empty inputs too.
        for how in [Compression::Gzip, Compression::Zstd, Compression::Xz] {
            for data in [&b""[..], b"x"] {
                let packed = compress(data.to_vec(), how).unwrap();
                assert_eq!(decompress(&packed, how).unwrap(), data, "{how}");
            }
        }
    }

    #[test]
    fn kernel_config() {
        let cases: &[(&str, &[Compression])] = &[
            ("", &[]),
            (
                "CONFIG_RD_GZIP=y\n# CONFIG_RD_XZ is not set\nCONFIG_RD_ZSTD=y\n",
                &[Compression::Zstd, Compression::Gzip],
            ),
            ("CONFIG_RD_XZ=y\nCONFIG_RD_GZIP=m\nCONFIG_RD_ZSTD_X=y\n", &[Compression::Xz]),
        ];
        for (text, want) in cases {
            assert_eq!(enabled_in_config(text), *want, "{text:?}");
        }
        assert_eq!(
            config_candidates(Path::new("/x/lib/modules"), "6.1"),
            [
                PathBuf::from("/x/lib/modules/6.1/config"),
                "/x/boot/config-6.1".into(),
                "/boot/config-6.1".into()
            ]
        );
        assert_eq!(
            config_candidates(Path::new("/lib/modules"), "6.1"),
            [PathBuf::from("/lib/modules/6.1/config"), "/boot/config-6.1".into()]
        );
    }

    #[test]
    fn default_from_the_kernel_config() {
        let dir = std::env::temp_dir().join(format!("rootstock-compress-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let modules = dir.join("lib/modules");
        std::fs::create_dir_all(modules.join("1.0")).unwrap();
        std::fs::create_dir_all(dir.join("boot")).unwrap();
        let kver = "1.0-rootstock-test";
        std::fs::create_dir_all(modules.join(kver)).unwrap();
        let (c, why) = default_for_kernel(&modules, kver);
        assert_eq!((c, why.as_str()), (Compression::Gzip, "no kernel config found for 1.0-rootstock-test"));

        let boot = dir.join("boot").join(format!("config-{kver}"));
        std::fs::write(&boot, "CONFIG_RD_GZIP=y\nCONFIG_RD_XZ=y\n").unwrap();
        assert_eq!(default_for_kernel(&modules, kver).0, Compression::Xz);
        std::fs::write(&boot, "CONFIG_RD_GZIP=y\nCONFIG_RD_XZ=y\nCONFIG_RD_ZSTD=y\n").unwrap();
        let (c, why) = default_for_kernel(&modules, kver);
        assert_eq!((c, why), (Compression::Zstd, format!("CONFIG_RD_ZSTD in {}", boot.display())));
        // The modules directory's own config comes first.
        std::fs::write(modules.join(kver).join("config"), "CONFIG_RD_LZ4=y\n").unwrap();
        let (c, why) = default_for_kernel(&modules, kver);
        let own = modules.join(kver).join("config");
        assert_eq!(
            (c, why),
            (Compression::Gzip, format!("{} enables none of zstd, xz, gzip", own.display()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
