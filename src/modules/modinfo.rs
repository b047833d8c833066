//! What a module says about itself: its ELF `.modinfo` section (name,
//! `depends=`, `alias=`, `softdep=`, `vermagic=`).

use std::path::Path;

use rootstock_core::modules::normalize;

use super::error::ModError;

/// What a module's `.modinfo` section says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModInfo {
    /// Normalised.
    pub name: String,
    /// Modules that must be loaded first (normalised names).
    pub depends: Vec<String>,
    /// Glob patterns, matched against device modaliases and requested names.
    pub aliases: Vec<String>,
    /// `softdep=pre: ...`: names or aliases, loaded first when present.
    pub softdep_pre: Vec<String>,
    /// `softdep=post: ...`: names or aliases, loaded afterwards when present.
    pub softdep_post: Vec<String>,
    /// e.g. `6.1.0-56-amd64 SMP preempt mod_unload modversions `.
    pub vermagic: Option<String>,
    /// `firmware=`: files the module may load from `/lib/firmware`.
    pub firmware: Vec<String>,
}

impl ModInfo {
    /// Parse the bytes of a `.modinfo` section: NUL-separated `key=value`
    /// strings. Kernels before 5.x have no `name=`: then `fallback_name`
    /// (the file name without `.ko`) is used. Unknown keys are ignored.
    pub fn parse(section: &[u8], fallback_name: &str) -> ModInfo {
        let mut info = ModInfo::default();
        for record in section.split(|&b| b == 0) {
            let record = String::from_utf8_lossy(record);
            let Some((key, value)) = record.split_once('=') else { continue };
            match key {
                "name" => info.name = normalize(value.trim()),
                "depends" => info
                    .depends
                    .extend(value.split(',').map(str::trim).filter(|d| !d.is_empty()).map(normalize)),
                "alias" if !value.is_empty() => info.aliases.push(value.to_string()),
                "softdep" => parse_softdep(value, &mut info.softdep_pre, &mut info.softdep_post),
                "vermagic" => info.vermagic = Some(value.to_string()),
                "firmware" if !value.is_empty() => info.firmware.push(value.to_string()),
                _ => {}
            }
        }
        if info.name.is_empty() {
            info.name = normalize(fallback_name);
        }
        info.depends.dedup();
        info
    }
}

/// `pre: a b post: c`. Words before any `pre:` or `post:` are ignored.
fn parse_softdep(value: &str, pre: &mut Vec<String>, post: &mut Vec<String>) {
    let mut into: Option<&mut Vec<String>> = None;
    for word in value.split_whitespace() {
        match word {
            "pre:" => into = Some(&mut *pre),
            "post:" => into = Some(&mut *post),
            w => {
                if let Some(list) = into.as_deref_mut() {
                    list.push(w.to_string());
                }
            }
        }
    }
}

/// The bytes of the `.modinfo` section of an ELF file, found through the
/// section headers with goblin. `Ok(None)`: an ELF file without one.
fn modinfo_section(bytes: &[u8]) -> Result<Option<&[u8]>, String> {
    use goblin::container::Ctx;
    use goblin::elf::{Elf, SectionHeader};

    let header = Elf::parse_header(bytes).map_err(|e| e.to_string())?;
    let container = header.container().map_err(|e| e.to_string())?;
    let endian = header.endianness().map_err(|e| e.to_string())?;
    let ctx = Ctx::new(container, endian);
    let sections = SectionHeader::parse(bytes, header.e_shoff as usize, header.e_shnum as usize, ctx)
        .map_err(|e| format!("section headers: {e}"))?;
    let data = |sh: &SectionHeader| -> Option<&[u8]> {
        let start = usize::try_from(sh.sh_offset).ok()?;
        let len = usize::try_from(sh.sh_size).ok()?;
        bytes.get(start..start.checked_add(len)?)
    };
    let names = sections.get(header.e_shstrndx as usize).and_then(data).ok_or("no section name table")?;
    for sh in &sections {
        let name = names.get(sh.sh_name..).and_then(|n| n.split(|&b| b == 0).next());
        if name == Some(b".modinfo") {
            return data(sh).map(Some).ok_or_else(|| "the .modinfo section lies outside the file".into());
        }
    }
    Ok(None)
}

/// Read the `.modinfo` of a module already in memory (uncompressed).
/// `path` is for messages; its file name gives the name on old kernels.
pub fn modinfo_from_elf(bytes: &[u8], path: &Path) -> Result<ModInfo, ModError> {
    let section = modinfo_section(bytes).map_err(|reason| ModError::NotElf { path: path.into(), reason })?;
    let section = section.ok_or_else(|| ModError::NoModinfo { path: path.into() })?;
    let info = ModInfo::parse(section, module_stem(path).unwrap_or(""));
    // Names go into the line-based index PID 1 reads: refuse what would
    // break a line or a field there.
    let bad_name =
        |s: &str| s.is_empty() || s.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/');
    let bad =
        |field, value: &str| Err(ModError::BadName { path: path.into(), field, value: value.to_string() });
    if bad_name(&info.name) {
        return bad("name", &info.name);
    }
    for (field, list) in
        [("depends", &info.depends), ("softdep", &info.softdep_pre), ("softdep", &info.softdep_post)]
    {
        if let Some(v) = list.iter().find(|v| bad_name(v)) {
            return bad(field, v);
        }
    }
    if let Some(v) = info.aliases.iter().find(|v| v.chars().any(|c| c.is_control())) {
        return bad("alias", v);
    }
    Ok(info)
}

/// `ext4.ko.xz` → `ext4`; None for a file that is not a module.
pub(crate) fn module_stem(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::fake_elf;

    #[test]
    fn modinfo_records() {
        let section = b"license=GPL\0alias=virtio:d00000002v*\0depends=virtio,virtio_ring\0\
            softdep=pre: crypto-crc32c post: foo-bar\0name=virtio_blk\0\0\0garbage\0\
            vermagic=6.1.0 SMP \0alias=\0firmware=a/b.bin\0firmware=\0firmware=c.fw\0";
        let info = ModInfo::parse(section, "ignored");
        assert_eq!(
            info,
            ModInfo {
                name: "virtio_blk".into(),
                depends: vec!["virtio".into(), "virtio_ring".into()],
                aliases: vec!["virtio:d00000002v*".into()],
                softdep_pre: vec!["crypto-crc32c".into()],
                softdep_post: vec!["foo-bar".into()],
                vermagic: Some("6.1.0 SMP ".into()),
                firmware: vec!["a/b.bin".into(), "c.fw".into()],
            }
        );
        // Old kernels: no name=; an empty depends=.
        let info = ModInfo::parse(b"depends=\0alias=fs-ext4\0", "usb-storage");
        assert_eq!((info.name.as_str(), info.depends.len()), ("usb_storage", 0));
        // Words before pre:/post: are not softdeps.
        let info = ModInfo::parse(b"softdep=gcm\0softdep=pre: a b\0", "m");
        assert_eq!((info.softdep_pre, info.softdep_post), (vec!["a".into(), "b".into()], vec![]));
    }
    #[test]
    fn elf_inputs() {
        let p = Path::new("x/m.ko");
        let good = fake_elf(&[(".text", b"\xc3"), (".modinfo", b"name=m\0depends=a\0")]);
        assert_eq!(modinfo_from_elf(&good, p).unwrap().depends, ["a"]);
        let none = fake_elf(&[(".text", b"\xc3")]);
        assert_eq!(modinfo_from_elf(&none, p), Err(ModError::NoModinfo { path: p.into() }));
        let cases: &[(&[u8], &str)] = &[
            (b"", "not an ELF file"),
            (b"hello, I am a text file, not a module at all, really I'm not.......", "not an ELF file"),
            (&good[..40], "not an ELF file"),
            (&good[..good.len() - 10], "not an ELF file"),
        ];
        for (bytes, want) in cases {
            let err = modinfo_from_elf(bytes, p).unwrap_err().to_string();
            assert!(err.starts_with("x/m.ko: ") && err.contains(want), "{err}");
        }
        // A .modinfo whose offset points past the end of the file.
        let mut broken = good.clone();
        let shoff = u64::from_le_bytes(broken[40..48].try_into().unwrap()) as usize;
        let modinfo_sh = shoff + 2 * 64;
        broken[modinfo_sh + 24..modinfo_sh + 32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(modinfo_from_elf(&broken, p).unwrap_err().to_string().contains("outside the file"));
    }

    #[test]
    fn names_that_would_break_the_index_are_refused() {
        let p = Path::new("x/m.ko");
        for (modinfo, want) in [
            (&b"name=evil\nalias=pci:*\0"[..], "name=evil\\x0aalias=pci:*"),
            (b"name=m\0depends=a\nb\0", "depends=a\\x0ab"),
            (b"name=m\0alias=x\ry\0", "alias=x\\x0dy"),
            (b"name=a b\0", "name=a b"),
            (b"name=../m\0", "name=../m"),
        ] {
            let elf = fake_elf(&[(".modinfo", modinfo)]);
            let err = modinfo_from_elf(&elf, p).unwrap_err().to_string();
            assert!(err.contains(want) && err.contains("refused") && !err.contains('\n'), "{err}");
        }
    }
}
