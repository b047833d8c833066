//! The module index of an initramfs: what `rootstock mkinitramfs` writes and
//! PID 1 reads instead of ELF, with modalias matching ([`glob`]) and load
//! order ([`order`]).
//!
//! Module names are compared normalised: `-` and `_` are the same character
//! to the kernel (`usb-storage` is `usb_storage`).

mod error;
pub mod glob;
pub mod order;
pub mod rank;

use std::collections::BTreeMap;

pub use error::IndexError;
pub use glob::alias_matches;
use order::{Edges, load_order};

/// The name of the index file, in `lib/modules/<kver>/` of the initramfs.
pub const INDEX_FILE: &str = "rootstock.modules";

/// `usb-storage` → `usb_storage`.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// One module in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Normalised.
    pub name: String,
    /// Relative to the index's directory, e.g. `kernel/fs/ext4/ext4.ko`.
    pub path: String,
    pub depends: Vec<String>,
    pub softdep_pre: Vec<String>,
    pub softdep_post: Vec<String>,
    pub aliases: Vec<String>,
}

/// The modules of an initramfs: what PID 1 reads instead of ELF.
///
/// Text, one module per line, fields separated by one tab:
///
/// ```text
/// # comment
/// rootstock-modules 1 6.1.0-56-amd64
/// ext4<TAB>kernel/fs/ext4/ext4.ko<TAB>jbd2,mbcache,crc16<TAB><TAB><TAB>fs-ext4<TAB>ext3 ...
/// ```
///
/// The first line that is not a comment is the header: the format version
/// and the kernel version. Module fields: name, path, depends, softdep-pre,
/// softdep-post (each a comma-separated list of module names in the index,
/// possibly empty), then every alias. Every dependency must be in the index
/// and the hard dependencies must not form a cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    kver: String,
    entries: BTreeMap<String, IndexEntry>,
    /// Every alias by its literal start (what comes before its first `*`,
    /// `?`, `[` or `\`): (module name, the alias). Derived from `entries`.
    by_prefix: BTreeMap<String, Vec<(String, String)>>,
}

const INDEX_MAGIC: &str = "rootstock-modules";
const INDEX_VERSION: &str = "1";

impl Index {
    /// Build an index, checking it as [`Index::parse`] does.
    pub fn new(kver: &str, entries: Vec<IndexEntry>) -> Result<Index, IndexError> {
        let bad = |reason: String| IndexError::Line { line: 0, reason };
        if kver.is_empty() || kver.contains(char::is_whitespace) {
            return Err(bad(format!("bad kernel version {kver:?}")));
        }
        let mut map = BTreeMap::new();
        for mut e in entries {
            e.name = normalize(&e.name);
            check_entry(&e).map_err(bad)?;
            let name = e.name.clone();
            if map.insert(name.clone(), e).is_some() {
                return Err(bad(format!("module {name} is listed twice")));
            }
        }
        let index = Index::with_entries(kver.into(), map);
        index.check_references()?;
        Ok(index)
    }

    fn with_entries(kver: String, entries: BTreeMap<String, IndexEntry>) -> Index {
        let mut by_prefix: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for e in entries.values() {
            for a in &e.aliases {
                by_prefix.entry(literal_start(a).to_string()).or_default().push((e.name.clone(), a.clone()));
            }
        }
        Index { kver, entries, by_prefix }
    }

    pub fn kver(&self) -> &str {
        &self.kver
    }

    pub fn get(&self, name: &str) -> Option<&IndexEntry> {
        self.entries.get(&normalize(name))
    }

    pub fn entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries.values()
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "# rootstock module index, written by `rootstock mkinitramfs`, read by /init.\n\
             # One module per line, tab-separated: name, path (relative to this file's directory),\n\
             # depends, softdep-pre, softdep-post (comma-separated module names), then its aliases.\n\
             {INDEX_MAGIC} {INDEX_VERSION} {}\n",
            self.kver
        );
        for e in self.entries.values() {
            let fields =
                [&e.name, &e.path, &e.depends.join(","), &e.softdep_pre.join(","), &e.softdep_post.join(",")];
            let line: Vec<&str> =
                fields.into_iter().map(String::as_str).chain(e.aliases.iter().map(String::as_str)).collect();
            out.push_str(&line.join("\t"));
            out.push('\n');
        }
        out
    }

    pub fn parse(text: &str) -> Result<Index, IndexError> {
        let mut kver = None;
        let mut entries: BTreeMap<String, IndexEntry> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let bad = |reason: String| IndexError::Line { line: n + 1, reason };
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(kver) = &kver else {
                let words: Vec<&str> = line.split_whitespace().collect();
                match words[..] {
                    [INDEX_MAGIC, INDEX_VERSION, k] => kver = Some(k.to_string()),
                    [INDEX_MAGIC, v, _] => return Err(bad(format!("unsupported version {v}"))),
                    _ => return Err(bad(format!("expected \"{INDEX_MAGIC} {INDEX_VERSION} KVER\""))),
                }
                continue;
            };
            let _ = kver;
            let fields: Vec<&str> = line.split('\t').collect();
            let [name, path, depends, pre, post, aliases @ ..] = &fields[..] else {
                return Err(bad(format!("{} fields, expected at least 5", fields.len())));
            };
            let list =
                |s: &str| -> Vec<String> { s.split(',').filter(|x| !x.is_empty()).map(normalize).collect() };
            let e = IndexEntry {
                name: normalize(name),
                path: path.to_string(),
                depends: list(depends),
                softdep_pre: list(pre),
                softdep_post: list(post),
                aliases: aliases.iter().filter(|a| !a.is_empty()).map(|a| a.to_string()).collect(),
            };
            check_entry(&e).map_err(bad)?;
            if entries.contains_key(&e.name) {
                return Err(bad(format!("module {} is listed twice", e.name)));
            }
            entries.insert(e.name.clone(), e);
        }
        let kver = kver.ok_or(IndexError::Line { line: 0, reason: "no header line".into() })?;
        let index = Index::with_entries(kver, entries);
        index.check_references()?;
        Ok(index)
    }

    /// Every named dependency is in the index; hard ones have no cycle.
    fn check_references(&self) -> Result<(), IndexError> {
        for e in self.entries.values() {
            for d in e.depends.iter().chain(&e.softdep_pre).chain(&e.softdep_post) {
                if !self.entries.contains_key(d) {
                    return Err(IndexError::MissingDependency { module: e.name.clone(), needs: d.clone() });
                }
            }
        }
        let all: Vec<String> = self.entries.keys().cloned().collect();
        load_order(&all, |name| Ok(self.edges(name))).map(|_| ())
    }

    fn edges(&self, name: &str) -> Edges {
        match self.entries.get(name) {
            Some(e) => Edges {
                hard: e.depends.clone(),
                soft_pre: e.softdep_pre.clone(),
                soft_post: e.softdep_post.clone(),
            },
            None => Edges::default(),
        }
    }

    /// Modules whose name is `name` or one of whose aliases matches it,
    /// sorted.
    pub fn lookup(&self, name: &str) -> Vec<String> {
        if let Some(e) = self.get(name) {
            return vec![e.name.clone()];
        }
        self.entries
            .values()
            .filter(|e| e.aliases.iter().any(|a| alias_matches(a, name)))
            .map(|e| e.name.clone())
            .collect()
    }

    /// The modules with an alias matching the device modalias `modalias`
    /// (its drivers, without their dependencies), sorted. A generic image
    /// holds a few thousand aliases and PID 1 matches every device against
    /// them: only the aliases whose literal start is a start of the
    /// modalias are globbed, looked up by each start of the modalias.
    pub fn drivers_for(&self, modalias: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        for end in (0..=modalias.len()).filter(|&i| modalias.is_char_boundary(i)) {
            let Some(candidates) = self.by_prefix.get(&modalias[..end]) else { continue };
            for (name, alias) in candidates {
                if !found.contains(name) && alias_matches(alias, modalias) {
                    found.push(name.clone());
                }
            }
        }
        found.sort();
        found
    }

    /// Load order for `roots`; references were checked when the index was
    /// made, so this cannot fail.
    pub fn order(&self, roots: &[String]) -> Vec<String> {
        load_order(roots, |name| Ok::<_, IndexError>(self.edges(name))).unwrap_or_default()
    }
}

/// A glob's literal start: everything before its first `*`, `?`, `[` or
/// `\`. A string the glob matches starts with it.
fn literal_start(pattern: &str) -> &str {
    &pattern[..pattern.find(['*', '?', '[', '\\']).unwrap_or(pattern.len())]
}

fn check_entry(e: &IndexEntry) -> Result<(), String> {
    if e.name.is_empty() || e.name.contains([',', ' ', '\t', '/']) {
        return Err(format!("bad module name {:?}", e.name));
    }
    let path_ok = e.path.ends_with(".ko")
        && !e.path.starts_with('/')
        && e.path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !path_ok {
        return Err(format!("module {}: bad path {:?} (a relative .ko path is needed)", e.name, e.path));
    }
    if e.aliases.iter().any(|a| a.contains(['\t', '\n', '\r'])) {
        return Err(format!("module {}: an alias holds a tab or newline", e.name));
    }
    Ok(())
}

/// The modules to load for these device modaliases (from
/// `/sys/devices/**/modalias`), in load order: every module with an alias
/// matching one of them, each after its dependencies, each once. Modules
/// already loaded can be filtered out by the caller; the order stays valid.
pub fn modules_for(modaliases: &[String], index: &Index) -> Vec<String> {
    let mut roots = Vec::new();
    for m in modaliases {
        roots.extend(index.drivers_for(m));
    }
    index.order(&roots)
}

/// The modules to load for names such as a `rootfstype=` (`ext4`, found by
/// its module name or its `fs-ext4` alias), in load order.
pub fn modules_named(names: &[&str], index: &Index) -> Vec<String> {
    let mut roots = Vec::new();
    for n in names {
        let mut found = index.lookup(n);
        if found.is_empty() {
            found = index.lookup(&format!("fs-{n}"));
        }
        roots.extend(found);
    }
    index.order(&roots)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn entry(name: &str, depends: &[&str], aliases: &[&str]) -> IndexEntry {
        IndexEntry {
            name: name.into(),
            path: format!("kernel/{name}.ko"),
            depends: strings(depends),
            softdep_pre: vec![],
            softdep_post: vec![],
            aliases: strings(aliases),
        }
    }

    fn small_index() -> Index {
        let mut ext4 = entry("ext4", &["jbd2", "mbcache", "crc16"], &["fs-ext4", "ext3", "fs-ext3"]);
        let mut jbd2 = entry("jbd2", &[], &[]);
        jbd2.softdep_pre = strings(&["crc32c_generic"]);
        ext4.path = "kernel/fs/ext4/ext4.ko".into();
        Index::new(
            "6.1.0-test",
            vec![
                ext4,
                jbd2,
                entry("mbcache", &[], &[]),
                entry("crc16", &[], &[]),
                entry("crc32c_generic", &[], &["crypto-crc32c", "crc32c"]),
                entry("virtio", &[], &[]),
                entry("virtio_ring", &[], &[]),
                entry("virtio_blk", &["virtio", "virtio_ring"], &["virtio:d00000002v*"]),
                entry("virtio_scsi", &["scsi_mod", "virtio_ring", "virtio"], &["virtio:d00000008v*"]),
                entry("scsi_mod", &[], &[]),
                entry("sd_mod", &["scsi_mod"], &["scsi:t-0x00*", "scsi:t-0x0e*"]),
                entry("virtio_pci", &["virtio_ring", "virtio"], &["pci:v00001AF4d*sv*sd*bc*sc*i*"]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn boot_selection() {
        let index = small_index();
        let cases: &[(&[&str], &[&str])] = &[
            (&["virtio:d00000002v00001AF4"], &["virtio", "virtio_ring", "virtio_blk"]),
            (
                &[
                    "pci:v00001AF4d00001042sv00001AF4sd00001100bc01sc00i00",
                    "virtio:d00000008v00001AF4",
                    "scsi:t-0x00",
                ],
                &["virtio_ring", "virtio", "virtio_pci", "scsi_mod", "virtio_scsi", "sd_mod"],
            ),
            (&["pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", "acpi:PNP0A03:"], &[]),
            (&[], &[]),
        ];
        for (aliases, want) in cases {
            assert_eq!(modules_for(&strings(aliases), &index), strings(want), "{aliases:?}");
        }
        let named: &[(&[&str], &[&str])] = &[
            (&["ext4"], &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"]),
            (&["ext3"], &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4"]),
            (
                &["fs-ext4", "sd-mod"],
                &["crc32c_generic", "jbd2", "mbcache", "crc16", "ext4", "scsi_mod", "sd_mod"],
            ),
            (&["xfs"], &[]),
        ];
        for (names, want) in named {
            assert_eq!(modules_named(names, &index), strings(want), "{names:?}");
        }
    }

    #[test]
    fn the_literal_start_is_a_start_of_every_match() {
        let cases: &[(&str, &str, bool)] = &[
            ("virtio:d00000002v*", "virtio:d00000002v00001AF4", true),
            ("virtio:d00000002v*", "virtio:d00000008v00001AF4", false),
            ("pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", true),
            ("acpi*:VMBUS:*", "acpi:VMBUS:", true),
            ("mmc:block", "mmc:block", true),
            ("mmc:block", "mmc:blocks", false),
            ("xen:vbd", "xen:vbd", true),
            ("d[0-2]*", "d1x", true),
            ("a?c", "abc", true),
            ("\\*", "*", true),
            ("", "", true),
            ("*", "", true),
            (
                "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
                "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
                true,
            ),
        ];
        for (pattern, s, matches) in cases {
            assert_eq!(alias_matches(pattern, s), *matches, "{pattern} {s}");
            assert!(s.starts_with(literal_start(pattern)) || !matches, "{pattern} {s}");
        }
        assert_eq!(literal_start("pci:v00001AF4d*"), "pci:v00001AF4d");
        assert_eq!(literal_start("mmc:block"), "mmc:block");
        assert_eq!(literal_start("acpi*:VMBUS:*"), "acpi");
        assert_eq!(literal_start("\\*"), "");
    }

    #[test]
    fn index_round_trip() {
        let index = small_index();
        let text = index.render();
        assert!(
            text.contains("\next4\tkernel/fs/ext4/ext4.ko\tjbd2,mbcache,crc16\t\t\tfs-ext4\text3\tfs-ext3\n"),
            "{text}"
        );
        assert!(text.contains("\nrootstock-modules 1 6.1.0-test\n"));
        let back = Index::parse(&text).unwrap();
        assert_eq!(back, index);
        assert_eq!(back.kver(), "6.1.0-test");
        assert_eq!(back.get("virtio-blk").map(|e| e.path.as_str()), Some("kernel/virtio_blk.ko"));
    }

    #[test]
    fn hostile_indexes_are_errors() {
        let head = "rootstock-modules 1 6.1.0\n";
        let cases: &[(String, &str)] = &[
            (String::new(), "no header line"),
            ("# only a comment\n".into(), "no header line"),
            ("rootstock-modules 2 6.1.0\n".into(), "line 1: unsupported version 2"),
            ("something else\n".into(), "line 1: expected"),
            (format!("{head}a\tkernel/a.ko\n"), "line 2: 2 fields"),
            (format!("{head}a\t/kernel/a.ko\t\t\t\n"), "bad path"),
            (format!("{head}a\tkernel/../../a.ko\t\t\t\n"), "bad path"),
            (format!("{head}a\tkernel/a.txt\t\t\t\n"), "bad path"),
            (format!("{head}\tkernel/a.ko\t\t\t\n"), "bad module name"),
            (
                format!("{head}a\tkernel/a.ko\t\t\t\na\tkernel/b.ko\t\t\t\n"),
                "line 3: module a is listed twice",
            ),
            (format!("{head}a\tkernel/a.ko\tb\t\t\n"), "module a depends on b, which is missing"),
            (format!("{head}a\tkernel/a.ko\t\tb\t\n"), "module a depends on b, which is missing"),
            (
                format!("{head}a\tkernel/a.ko\tb\t\t\nb\tkernel/b.ko\tc\t\t\nc\tkernel/c.ko\ta\t\t\n"),
                "cycle: a -> b -> c -> a",
            ),
        ];
        for (text, want) in cases {
            let err = Index::parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        // A softdep cycle is allowed (modprobe copes with it too).
        let ok = format!("{head}a\tkernel/a.ko\t\tb\t\nb\tkernel/b.ko\t\ta\t\n");
        let index = Index::parse(&ok).unwrap();
        assert_eq!(modules_named(&["a"], &index), strings(&["b", "a"]));
    }
}
