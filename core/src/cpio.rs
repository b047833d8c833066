//! A writer for the "newc" cpio format (magic `070701`), the one the kernel
//! unpacks into the initramfs (compression is the host tool's job).
//!
//! The output is reproducible: entries are sorted by path (so parents come
//! before their children), missing parent directories are added, inode
//! numbers follow that order, and every mtime, uid and gid is 0. The same
//! entries give byte-identical archives.
//!
//! Layout of one entry: a 110-byte ASCII header (the magic and 13 fields of
//! 8 hex digits), the path and a NUL, padding to a multiple of 4, the data,
//! padding to a multiple of 4. The archive ends with an entry named
//! `TRAILER!!!`.

use std::collections::{BTreeMap, BTreeSet};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

const TRAILER: &str = "TRAILER!!!";

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

/// One file in the archive. `path` is relative (no leading `/`), e.g.
/// `lib/modules/6.1.0-56-amd64/kernel/fs/ext4/ext4.ko`; `mode` holds the
/// permission bits only (the file type comes from `kind`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
}

impl Entry {
    pub fn dir(path: &str, mode: u32) -> Entry {
        Entry { path: path.to_string(), kind: Kind::Dir, mode }
    }
    pub fn file(path: &str, mode: u32, data: Vec<u8>) -> Entry {
        Entry { path: path.to_string(), kind: Kind::File(data), mode }
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry { path: path.to_string(), kind: Kind::Symlink(target.to_string()), mode: 0o777 }
    }
    pub fn char_dev(path: &str, mode: u32, major: u32, minor: u32) -> Entry {
        Entry { path: path.to_string(), kind: Kind::CharDev { major, minor }, mode }
    }
}

/// Why a set of entries cannot become an archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpioError {
    /// Empty, absolute, with `.`/`..`/empty components, a NUL, or the
    /// trailer's name.
    #[error("cpio: bad path {0:?}: it must be relative, without empty, '.' or '..' components")]
    BadPath(String),
    #[error("cpio: {0} is given twice")]
    Duplicate(String),
    /// A path whose parent is given as something other than a directory.
    #[error("cpio: {path}: its parent {parent} is not a directory")]
    ParentNotDir { path: String, parent: String },
    /// A file larger than the format's 32-bit size field.
    #[error("cpio: {0} is larger than 4 GiB, which newc cannot hold")]
    TooLarge(String),
}

fn check_path(path: &str) -> Result<(), CpioError> {
    let bad = path.is_empty()
        || path == TRAILER
        || path.contains('\0')
        || path.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad { Err(CpioError::BadPath(path.to_string())) } else { Ok(()) }
}

/// The parent directories of `path`, outermost first: `a/b/c` → `a`, `a/b`.
fn parents(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

/// Write `entries` as a newc archive, with the parent directories that are
/// not given added (mode 0755). Fails on a bad or duplicate path.
pub fn write_newc(entries: &[Entry]) -> Result<Vec<u8>, CpioError> {
    let mut by_path: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in entries {
        check_path(&e.path)?;
        if by_path.insert(&e.path, e).is_some() {
            return Err(CpioError::Duplicate(e.path.clone()));
        }
    }
    let implied = Entry::dir("", 0o755);
    let mut implied_dirs: BTreeSet<&str> = BTreeSet::new();
    for e in entries {
        for parent in parents(&e.path) {
            match by_path.get(parent) {
                Some(p) if p.kind != Kind::Dir => {
                    return Err(CpioError::ParentNotDir { path: e.path.clone(), parent: parent.into() });
                }
                Some(_) => {}
                None => {
                    implied_dirs.insert(parent);
                }
            }
        }
    }
    for d in implied_dirs {
        by_path.insert(d, &implied);
    }

    // A directory's link count: itself, its "." and each subdirectory's "..".
    let mut nlink: BTreeMap<&str, u32> = BTreeMap::new();
    for (path, e) in &by_path {
        if e.kind == Kind::Dir {
            *nlink.entry(path).or_insert(0) += 2;
            if let Some((parent, _)) = path.rsplit_once('/') {
                *nlink.entry(parent).or_insert(0) += 1;
            }
        }
    }

    // A BTreeMap iterates in byte order of the paths, and a path sorts
    // before every path that has it as a prefix: parents come first.
    let mut out = Vec::new();
    for (ino, (path, e)) in (1u32..).zip(&by_path) {
        let perm = e.mode & 0o7777;
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match &e.kind {
            Kind::Dir => (S_IFDIR | perm, &[], (0, 0)),
            Kind::File(d) => (S_IFREG | perm, d, (0, 0)),
            Kind::Symlink(t) => (S_IFLNK | perm, t.as_bytes(), (0, 0)),
            Kind::CharDev { major, minor } => (S_IFCHR | perm, &[], (*major, *minor)),
        };
        let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge(path.to_string()))?;
        let header = Header { ino, mode, nlink: nlink.get(path).copied().unwrap_or(1), size, rdev };
        header.write(&mut out, path);
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    Header { ino: 0, mode: 0, nlink: 1, size: 0, rdev: (0, 0) }.write(&mut out, TRAILER);
    Ok(out)
}

struct Header {
    ino: u32,
    mode: u32,
    nlink: u32,
    size: u32,
    rdev: (u32, u32),
}

impl Header {
    /// The header, the name with its NUL, and the padding after them.
    fn write(&self, out: &mut Vec<u8>, name: &str) {
        let namesize = name.len() as u32 + 1;
        let fields = [
            self.ino,
            self.mode,
            0, // uid
            0, // gid
            self.nlink,
            0, // mtime
            self.size,
            0, // devmajor
            0, // devminor
            self.rdev.0,
            self.rdev.1,
            namesize,
            0, // check
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(out);
    }
}

/// The zero bytes to put between an initramfs image of `len` bytes
/// (compressed or not) and a newc archive appended to it. The kernel
/// unpacks concatenated archives in order into the same rootfs, skipping
/// zeros between them: up to a multiple of 4 (where it looks for the next
/// header), plus 4 more, which end a legacy lz4 stream (it has no end marker
/// of its own: a zero chunk size ends it).
pub fn separator(len: u64) -> Vec<u8> {
    vec![0; (len.next_multiple_of(4) - len) as usize + 4]
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// gzip as `rootstock mkinitramfs` writes it (the host tool's
    /// `compress`), for the tests of archives appended to compressed ones.
    #[derive(Clone, Copy)]
    enum Compression {
        None,
        Gzip,
    }

    fn compress(data: Vec<u8>, how: Compression) -> Vec<u8> {
        match how {
            Compression::None => data,
            Compression::Gzip => {
                let mut enc =
                    flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
                enc.write_all(&data).unwrap();
                enc.finish().unwrap()
            }
        }
    }
    use std::path::Path;
    use std::process::{Command, Stdio};

    fn sample() -> Vec<Entry> {
        vec![
            Entry::file("init", 0o755, b"#!/bin/sh\necho hi\n".to_vec()),
            Entry::char_dev("dev/console", 0o600, 5, 1),
            Entry::dir("dev", 0o755),
            Entry::dir("proc", 0o555),
            Entry::symlink("bin/sh", "busybox"),
            Entry::file("bin/busybox", 0o755, vec![0x7f, b'E', b'L', b'F', 0, 1, 2]),
            Entry::file("lib/modules/6.1.0/kernel/fs/ext4/ext4.ko", 0o644, vec![7; 4097]),
            Entry::file("empty", 0o644, Vec::new()),
        ]
    }

    /// Split an archive into (name, header fields, data), checking the
    /// alignment of every part on the way.
    fn parse(archive: &[u8]) -> Vec<(String, [u32; 13], Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            assert_eq!(pos % 4, 0, "entry at {pos} is not aligned");
            assert_eq!(&archive[pos..pos + 6], b"070701");
            let mut f = [0u32; 13];
            for (i, v) in f.iter_mut().enumerate() {
                let s = std::str::from_utf8(&archive[pos + 6 + 8 * i..pos + 14 + 8 * i]).unwrap();
                *v = u32::from_str_radix(s, 16).unwrap();
            }
            let namesize = f[11] as usize;
            let name = &archive[pos + 110..pos + 110 + namesize];
            assert_eq!(name.last(), Some(&0));
            let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
            pos = (pos + 110 + namesize).next_multiple_of(4);
            let data = archive[pos..pos + f[6] as usize].to_vec();
            pos = (pos + f[6] as usize).next_multiple_of(4);
            let done = name == TRAILER;
            out.push((name, f, data));
            if done {
                assert_eq!(pos, archive.len(), "bytes after the trailer");
                return out;
            }
        }
    }

    #[test]
    fn layout_order_inodes_links() {
        let archive = write_newc(&sample()).unwrap();
        let entries = parse(&archive);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "dev",
                "dev/console",
                "empty",
                "init",
                "lib",
                "lib/modules",
                "lib/modules/6.1.0",
                "lib/modules/6.1.0/kernel",
                "lib/modules/6.1.0/kernel/fs",
                "lib/modules/6.1.0/kernel/fs/ext4",
                "lib/modules/6.1.0/kernel/fs/ext4/ext4.ko",
                "proc",
                TRAILER,
            ]
        );
        // (name, mode, nlink, size, rdevmajor, rdevminor)
        let expect: &[(&str, u32, u32, u32, u32, u32)] = &[
            ("bin", 0o040755, 2, 0, 0, 0),
            ("bin/busybox", 0o100755, 1, 7, 0, 0),
            ("bin/sh", 0o120777, 1, 7, 0, 0),
            ("dev/console", 0o020600, 1, 0, 5, 1),
            ("empty", 0o100644, 1, 0, 0, 0),
            ("init", 0o100755, 1, 18, 0, 0),
            ("lib", 0o040755, 3, 0, 0, 0),
            ("lib/modules/6.1.0/kernel/fs/ext4", 0o040755, 2, 0, 0, 0),
            ("lib/modules/6.1.0/kernel/fs/ext4/ext4.ko", 0o100644, 1, 4097, 0, 0),
            ("proc", 0o040555, 2, 0, 0, 0),
            (TRAILER, 0, 1, 0, 0, 0),
        ];
        for (name, mode, nlink, size, rmaj, rmin) in expect {
            let (_, f, _) = entries.iter().find(|e| e.0 == *name).unwrap();
            assert_eq!((f[1], f[4], f[6], f[9], f[10]), (*mode, *nlink, *size, *rmaj, *rmin), "{name}");
        }
        for (i, (name, f, _)) in entries.iter().enumerate() {
            let ino = if name == TRAILER { 0 } else { i as u32 + 1 };
            assert_eq!(f[0], ino, "{name}: inode");
            // uid, gid, mtime, devmajor, devminor, check
            for k in [2, 3, 5, 7, 8, 12] {
                assert_eq!(f[k], 0, "{name}: field {k}");
            }
        }
        let sh = entries.iter().find(|e| e.0 == "bin/sh").unwrap();
        assert_eq!(sh.2, b"busybox");
    }

    #[test]
    fn appended_archive_follows_a_gzip_image_aligned() {
        use std::io::Read;
        let extra = [Entry::file("rootstock-kexec-state", 0o644, b"reason=fallback\n".to_vec())];
        for payload_len in 0..8 {
            let first = write_newc(&[Entry::file("init", 0o755, vec![1; payload_len])]).unwrap();
            let image = compress(first.clone(), Compression::Gzip);
            let both = [image.clone(), separator(image.len() as u64), write_newc(&extra).unwrap()].concat();
            // The gzip member is unchanged and decompresses alone to the first archive...
            let mut dec = flate2::read::GzDecoder::new(&both[..]);
            let mut out = Vec::new();
            dec.read_to_end(&mut out).unwrap();
            assert_eq!(out, first);
            // ...then zero padding to a multiple of 4 and 4 more zeros, then
            // the second archive.
            let start = image.len().next_multiple_of(4) + 4;
            assert!(both[image.len()..start].iter().all(|&b| b == 0));
            let entries = parse(&both[start..]);
            assert_eq!(entries[0].0, "rootstock-kexec-state");
            assert_eq!(entries[0].2, b"reason=fallback\n");
        }
        assert_eq!(separator(0), [0; 4]);
        assert_eq!(separator(5), [0; 7]);
    }

    #[test]
    fn padding_for_every_name_and_data_length() {
        // Names of 1..=8 bytes and data of 0..=8 bytes cover every residue.
        for name_len in 1..=8 {
            for data_len in 0..=8 {
                let name = "n".repeat(name_len);
                let data: Vec<u8> = (0..data_len as u8).collect();
                let archive = write_newc(&[Entry::file(&name, 0o644, data.clone())]).unwrap();
                assert_eq!(archive.len() % 4, 0);
                let entries = parse(&archive);
                assert_eq!(entries[0].0, name);
                assert_eq!(entries[0].2, data);
                assert_eq!(entries.len(), 2);
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let cases: &[(&[Entry], CpioError)] = &[
            (&[Entry::dir("", 0o755)], CpioError::BadPath("".into())),
            (&[Entry::dir("/etc", 0o755)], CpioError::BadPath("/etc".into())),
            (&[Entry::dir("a/../b", 0o755)], CpioError::BadPath("a/../b".into())),
            (&[Entry::dir("./a", 0o755)], CpioError::BadPath("./a".into())),
            (&[Entry::dir("a//b", 0o755)], CpioError::BadPath("a//b".into())),
            (&[Entry::dir("a/", 0o755)], CpioError::BadPath("a/".into())),
            (&[Entry::dir("a\0b", 0o755)], CpioError::BadPath("a\0b".into())),
            (&[Entry::dir(TRAILER, 0o755)], CpioError::BadPath(TRAILER.into())),
            (&[Entry::dir("a", 0o755), Entry::file("a", 0o644, vec![])], CpioError::Duplicate("a".into())),
            (
                &[Entry::file("a", 0o644, vec![]), Entry::file("a/b", 0o644, vec![])],
                CpioError::ParentNotDir { path: "a/b".into(), parent: "a".into() },
            ),
        ];
        for (entries, want) in cases {
            assert_eq!(write_newc(entries).as_ref(), Err(want), "{entries:?}");
        }
    }

    #[test]
    fn reproducible_whatever_the_input_order() {
        let a = write_newc(&sample()).unwrap();
        let mut reversed = sample();
        reversed.reverse();
        assert_eq!(a, write_newc(&reversed).unwrap());
        assert_eq!(
            compress(a.clone(), Compression::Gzip),
            compress(write_newc(&reversed).unwrap(), Compression::Gzip)
        );
        assert_eq!(compress(a.clone(), Compression::None), a);
    }

    fn tool(name: &str) -> bool {
        let found = Command::new(name).arg("--version").stdout(Stdio::null()).status().is_ok();
        assert!(found, "{name} is not installed: apt-get install cpio gzip");
        found
    }

    /// Run a tool with `stdin` fed in, demand success, return its stdout.
    use crate::testutil::run_piped as run;

    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rootstock-cpio-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn gnu_cpio_lists_it() {
        tool("cpio");
        let archive = write_newc(&sample()).unwrap();
        let listing = run(Command::new("cpio").args(["-tv", "--quiet"]), &archive);
        let listing = String::from_utf8(listing).unwrap();
        let lines: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
        // e.g. "crw-------   1 root     root       5,   1 Jan  1  1970 dev/console"
        let find = |name: &str| {
            lines
                .iter()
                .find(|l| l.contains(&name))
                .unwrap_or_else(|| panic!("{name} not in the listing:\n{listing}"))
        };
        assert_eq!(find("dev/console")[0], "crw-------");
        assert_eq!(find("dev/console")[4..6], ["5,", "1"]);
        assert_eq!(find("init")[0], "-rwxr-xr-x");
        assert_eq!(find("bin/sh")[0], "lrwxrwxrwx");
        assert_eq!(find("bin/sh").last(), Some(&"busybox"));
        assert_eq!(find("lib")[0..2], ["drwxr-xr-x", "3"]);
        for l in &lines {
            assert_eq!(l[2..4], ["root", "root"], "{l:?}");
            assert!(l.contains(&"1970"), "{l:?}");
        }
        assert_eq!(lines.len(), 15, "{listing}");
    }

    #[test]
    fn gnu_cpio_extracts_it() {
        tool("cpio");
        let dir = temp_dir("extract");
        let archive = write_newc(&sample()).unwrap();
        // The device node needs root; extract everything else.
        let no_dev: Vec<Entry> = sample().into_iter().filter(|e| e.path != "dev/console").collect();
        let archive_no_dev = write_newc(&no_dev).unwrap();
        let as_root = rustix::process::geteuid().is_root();
        let input = if as_root { &archive } else { &archive_no_dev };
        run(
            Command::new("cpio").args(["-idm", "--quiet", "--no-absolute-filenames"]).current_dir(&dir),
            input,
        );
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        for e in sample() {
            let p = dir.join(&e.path);
            let md = std::fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{}: {err}", p.display()));
            match &e.kind {
                Kind::Dir => assert!(md.is_dir()),
                Kind::File(d) => {
                    assert_eq!(&std::fs::read(&p).unwrap(), d, "{}", e.path);
                    assert_eq!(md.permissions().mode() & 0o7777, e.mode, "{}", e.path);
                    assert_eq!(md.mtime(), 0, "{}", e.path);
                }
                Kind::Symlink(t) => assert_eq!(std::fs::read_link(&p).unwrap(), Path::new(t)),
                Kind::CharDev { major, minor } => {
                    if !as_root {
                        continue;
                    }
                    assert!(md.file_type().is_char_device());
                    assert_eq!(md.rdev(), rustix::fs::makedev(*major, *minor));
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gzip_gives_back_the_archive() {
        tool("gzip");
        let archive = write_newc(&sample()).unwrap();
        let gz = compress(archive.clone(), Compression::Gzip);
        assert_eq!(&gz[..2], [0x1f, 0x8b]);
        assert_eq!(&gz[4..8], [0, 0, 0, 0], "mtime in the gzip header");
        assert_eq!(gz[3] & 0x08, 0, "a file name in the gzip header");
        assert_eq!(run(Command::new("gzip").arg("-dc"), &gz), archive);
    }
}
