//! Which machine a kernel, its modules and a boot program are built for
//! (the ELF header's `e_machine`), and the architecture sections of module
//! sets: `mkinitramfs` runs on any host and builds for the target kernel's
//! architecture, read from its modules.

use std::fmt;

/// A machine rootstock builds initramfs images for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Machine {
    X86_64,
    Aarch64,
    /// Any other `e_machine`.
    Other(u16),
}

impl Machine {
    /// The `e_machine` of an ELF file, or None when `bytes` is not ELF.
    pub fn of_elf(bytes: &[u8]) -> Option<Machine> {
        let header = goblin::elf::Elf::parse_header(bytes).ok()?;
        Some(match header.e_machine {
            goblin::elf::header::EM_X86_64 => Machine::X86_64,
            goblin::elf::header::EM_AARCH64 => Machine::Aarch64,
            other => Machine::Other(other),
        })
    }

    /// A name in a module set's `arch:` line: Debian's (`amd64`, `arm64`)
    /// or the kernel's (`x86_64`, `aarch64`).
    pub fn from_name(name: &str) -> Option<Machine> {
        match name {
            "amd64" | "x86_64" => Some(Machine::X86_64),
            "arm64" | "aarch64" => Some(Machine::Aarch64),
            _ => None,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Machine::X86_64 => f.write_str("x86_64"),
            Machine::Aarch64 => f.write_str("aarch64"),
            Machine::Other(m) => write!(f, "ELF machine {m}"),
        }
    }
}

/// A module set line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct ListError {
    pub line: usize,
    pub what: String,
}

/// The module names of a list for a kernel of `machine`: whitespace-separated
/// words, `#` to the end of a line a comment. A line `arch: NAME...`
/// (`amd64`/`x86_64`, `arm64`/`aarch64`) starts a section whose names are
/// taken only for those machines; `arch: all` ends it. With `machine` None
/// (a kernel without module files), only the names outside sections count.
pub fn parse_list(text: &str, machine: Option<Machine>) -> Result<Vec<String>, ListError> {
    let mut names = Vec::new();
    let mut taking = true;
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("");
        if let Some(arches) = line.trim_start().strip_prefix("arch:") {
            let words: Vec<&str> = arches.split_whitespace().collect();
            if words == ["all"] {
                taking = true;
                continue;
            }
            if words.is_empty() {
                return Err(ListError { line: i + 1, what: "`arch:` names no architecture".into() });
            }
            taking = false;
            for w in words {
                let m = Machine::from_name(w).ok_or_else(|| ListError {
                    line: i + 1,
                    what: format!("unknown architecture {w:?} (amd64, arm64, x86_64, aarch64 or all)"),
                })?;
                taking |= Some(m) == machine;
            }
            continue;
        }
        if taking {
            names.extend(line.split_whitespace().map(str::to_string));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lists_are_words_without_comments() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("# only\n\n   # comments\n", &[]),
            (
                "ext4\nxfs # the other one\n  virtio-blk\tsd_mod\n#nvme\n",
                &["ext4", "xfs", "virtio-blk", "sd_mod"],
            ),
        ];
        for (text, want) in cases {
            for m in [None, Some(Machine::X86_64), Some(Machine::Aarch64)] {
                assert_eq!(parse_list(text, m).unwrap(), *want, "{text:?} {m:?}");
            }
        }
    }

    #[test]
    fn arch_sections_take_names_for_their_machines_only() {
        let text = "ext4\narch: amd64 # PC only\ni8042\narch: arm64\nvirtio_mmio\nsdhci-of-arasan\n\
                    arch: x86_64 aarch64\nboth\narch: all\nxfs\n";
        assert_eq!(parse_list(text, Some(Machine::X86_64)).unwrap(), ["ext4", "i8042", "both", "xfs"]);
        assert_eq!(
            parse_list(text, Some(Machine::Aarch64)).unwrap(),
            ["ext4", "virtio_mmio", "sdhci-of-arasan", "both", "xfs"]
        );
        assert_eq!(parse_list(text, Some(Machine::Other(243))).unwrap(), ["ext4", "xfs"]);
        assert_eq!(parse_list(text, None).unwrap(), ["ext4", "xfs"]);
        // A commented-out section line is a comment.
        assert_eq!(parse_list("# arch: arm64\na\n", Some(Machine::X86_64)).unwrap(), ["a"]);
    }

    #[test]
    fn bad_arch_lines_name_the_line() {
        let e = parse_list("a\narch: sparc\nb\n", Some(Machine::X86_64)).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.what.contains("\"sparc\""), "{e}");
        assert_eq!(parse_list("arch:\n", None).unwrap_err().line, 1);
        assert_eq!(parse_list("arch: all arm64\n", None).unwrap_err().to_string(), {
            "line 1: unknown architecture \"all\" (amd64, arm64, x86_64, aarch64 or all)"
        });
    }

    #[test]
    fn machines_come_from_the_elf_header() {
        let mut header = vec![0u8; 64];
        header[..4].copy_from_slice(b"\x7fELF");
        header[4] = 2; // 64-bit
        header[5] = 1; // little-endian
        header[6] = 1; // version
        header[16] = 1; // ET_REL, as a module
        for (em, want) in [(62u16, Machine::X86_64), (183, Machine::Aarch64), (243, Machine::Other(243))] {
            header[18..20].copy_from_slice(&em.to_le_bytes());
            assert_eq!(Machine::of_elf(&header), Some(want));
        }
        assert_eq!(Machine::of_elf(b"#!/bin/sh\n"), None);
        assert_eq!(Machine::X86_64.to_string(), "x86_64");
        assert_eq!(Machine::from_name("arm64"), Some(Machine::Aarch64));
    }
}
