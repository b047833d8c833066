//! The EFI system partition as systemd-boot leaves it: its
//! `loader/entries/*.conf` carry the boot loader's live counters
//! (`+LEFT-DONE`, renamed by systemd-boot on every try), where the copies on
//! the physical root's `/boot` keep the names ostree wrote. `rootstock
//! status` shows those counters; `rootstock bless` renames the counted entry
//! where systemd-bless-boot is absent, as it would.
//!
//! The ESP is untrusted like the physical root: at most [`MAX_ENTRIES`]
//! names are looked at, each entry is read confined to the ESP
//! (`openat2(RESOLVE_IN_ROOT)`, no FIFO, at most [`ENTRY_CAP`] bytes), and the
//! entry renamed is only ever a plain name in `loader/entries`.

use std::path::{Path, PathBuf};

use rootstock_core::counting;
use rootstock_core::seam::System;

/// Where a booted system mounts its ESP (systemd's `/efi`, Debian's
/// `/boot/efi`), relative to the root; the first with `loader/entries`.
pub const MOUNT_POINTS: [&str; 2] = ["efi", "boot/efi"];
/// Names looked at in `loader/entries`.
pub const MAX_ENTRIES: usize = 1024;
/// Bytes read of one entry.
pub const ENTRY_CAP: u64 = 64 * 1024;
/// systemd's own blesser: where it is installed, the rename is its job.
pub const SYSTEMD_BLESS_BOOT: &str = "usr/lib/systemd/systemd-bless-boot";

/// One entry on the ESP: its file name and the deployment it boots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspEntry {
    pub file: String,
    /// The `ostree=` of its `options` line.
    pub ostree: Option<String>,
}

/// The ESP: `explicit` when given, else the first of [`MOUNT_POINTS`] under
/// `root` that holds `loader/entries`.
pub fn find(root: &Path, explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(e) = explicit {
        return Some(e.to_path_buf());
    }
    MOUNT_POINTS.iter().map(|m| root.join(m)).find(|esp| esp.join("loader/entries").is_dir())
}

/// The `ostree=` argument of an entry's `options` lines.
pub fn ostree_arg(entry_text: &str) -> Option<String> {
    entry_text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("options"))
        .flat_map(str::split_whitespace)
        .find_map(|w| w.strip_prefix("ostree="))
        .map(String::from)
}

/// The `.conf` entries of `ESP/loader/entries`, sorted by name; the
/// problems met (an unreadable entry is left out and named).
pub fn entries(esp: &Path) -> (Vec<EspEntry>, Vec<String>) {
    let mut problems = Vec::new();
    let dir = esp.join("loader/entries");
    let root = match std::fs::File::open(esp) {
        Ok(f) => f,
        Err(e) => return (Vec::new(), vec![format!("{}: {e}", esp.display())]),
    };
    let list = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) => return (Vec::new(), vec![format!("{}: {e}", dir.display())]),
    };
    let mut names = Vec::new();
    for (n, e) in list.flatten().enumerate() {
        if n == MAX_ENTRIES {
            problems.push(format!("{}: more than {MAX_ENTRIES} names: the rest not read", dir.display()));
            break;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".conf") && !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    let mut out = Vec::new();
    for file in names {
        let rel = Path::new("loader/entries").join(&file);
        match rootstock_core::confine::read_in_root(&root, &rel, ENTRY_CAP) {
            Ok(bytes) => out.push(EspEntry { ostree: ostree_arg(&String::from_utf8_lossy(&bytes)), file }),
            Err(e) => problems.push(format!("{}: {e}", esp.display())),
        }
    }
    (out, problems)
}

/// The name `systemd-bless-boot good|bad` gives a counted entry: the
/// counter dropped (good), or `+0-DONE` (bad). `None`: not counted.
pub fn blessed_name(file: &str, good: bool) -> Option<String> {
    let (_, done) = counting::loader_count(file)?;
    let stem = file.strip_suffix(".conf").unwrap_or(file);
    let (base, _) = stem.rsplit_once('+')?;
    Some(if good { format!("{base}.conf") } else { format!("{base}+0-{done}.conf") })
}

/// The entry file named by the state's `loader_entry=` (systemd-boot's
/// `LoaderBootCountPath` with `/`): a plain name in `/loader/entries/`.
pub fn entry_file(loader_entry: &str) -> Option<&str> {
    let name = loader_entry.strip_prefix("/loader/entries/")?;
    let plain = !name.is_empty() && !name.contains('/') && name != "." && name != "..";
    plain.then_some(name)
}

/// A failed rename of the counted entry.
#[derive(Debug, thiserror::Error)]
pub enum BlessError {
    #[error("{0:?}: not an entry of /loader/entries")]
    NotAnEntry(String),
    #[error("{0}: no boot loader counter in its name")]
    NotCounted(String),
    #[error("{}: {step} {entry}: {error}", dir.display())]
    Io { step: &'static str, dir: PathBuf, entry: String, error: String },
}

/// What [`bless`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blessed {
    /// Renamed from the first name to the second.
    Renamed(String, String),
    /// The entry has that name already (blessed before, or systemd-boot
    /// took its last try: `+0-DONE` is bad already).
    Already(String),
}

/// Rename the counted entry `loader_entry` (the state's) on `esp` as
/// systemd-bless-boot would. As it does, an entry already given that
/// verdict is left as it is, and a good verdict also renames the entry's
/// bad name (`+0-DONE`, marked bad earlier in this boot). `loader` and
/// `entries` are opened one at a time without following a symlink (the
/// directory cannot be swapped between the check and the rename); the
/// rename never replaces an entry; the directory is synced after.
pub fn bless(esp: &Path, loader_entry: &str, good: bool) -> Result<Blessed, BlessError> {
    use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
    let name = entry_file(loader_entry).ok_or_else(|| BlessError::NotAnEntry(loader_entry.into()))?;
    let new = blessed_name(name, good).ok_or_else(|| BlessError::NotCounted(name.into()))?;
    let bad = blessed_name(name, false).unwrap_or_default();
    let dir = esp.join("loader/entries");
    let io = |step, entry: &str, e: rustix::io::Errno| BlessError::Io {
        step,
        dir: dir.clone(),
        entry: entry.to_string(),
        error: rootstock_core::errno::Errno::from(e).to_string(),
    };
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let top = rustix::fs::open(esp, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| io("open the ESP for", name, e))?;
    let loader = rustix::fs::openat(&top, "loader", flags, Mode::empty())
        .map_err(|e| io("open loader/ (a real directory) for", name, e))?;
    let fd = rustix::fs::openat(&loader, "entries", flags, Mode::empty())
        .map_err(|e| io("open loader/entries/ (a real directory) for", name, e))?;
    let kind = |n: &str| {
        rustix::fs::statat(&fd, n, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode))
    };
    if new == name || kind(&new).is_ok() && kind(name).is_err() {
        return Ok(Blessed::Already(new));
    }
    // The entry as this boot left it: its counted name, or (good after
    // bad) its bad one.
    let from = if kind(name).is_err() && good && kind(&bad).is_ok() { bad.as_str() } else { name };
    match kind(from) {
        Ok(rustix::fs::FileType::RegularFile) => {}
        Ok(_) => return Err(BlessError::NotAnEntry(loader_entry.into())),
        Err(e) => return Err(io("look up", from, e)),
    }
    match rustix::fs::renameat_with(&fd, from, &fd, new.as_str(), RenameFlags::NOREPLACE) {
        Ok(()) => {}
        // vfat before Linux 6.0 has no RENAME_NOREPLACE: check, then rename.
        Err(rustix::io::Errno::INVAL) => {
            if kind(&new).is_ok() {
                return Err(io("rename (the new name exists)", from, rustix::io::Errno::EXIST));
            }
            rustix::fs::renameat(&fd, from, &fd, new.as_str()).map_err(|e| io("rename", from, e))?
        }
        Err(e) => return Err(io("rename", from, e)),
    }
    rustix::fs::fsync(&fd).map_err(|e| io("sync the directory after renaming", from, e))?;
    Ok(Blessed::Renamed(from.to_string(), new))
}

/// Give the entry the boot loader counted this boot (`loader_entry`, the
/// state's `loader_entry=`: present only when rootstock booted that entry's
/// deployment) its verdict. Good: systemd-bless-boot's job where it is
/// installed under `root` (it runs after boot-complete.target), else the
/// rename here. Bad: systemd-bless-boot masked for the rest of the boot
/// under `run` ([`rootstock_core::plan::mask_bless_boot`]: its `good`
/// would rename the bad name back, and `LoaderBootCountPath` outlives a
/// soft reboot), then `systemd-bless-boot bad` where installed, else the
/// rename here. Returns what was done (`None`: nothing to do).
pub fn bless_booted_entry(
    sys: &mut dyn System,
    (root, run, esp): (&Path, &Path, Option<&Path>),
    loader_entry: Option<&str>,
    good: bool,
) -> Result<Option<String>, String> {
    let Some(entry) = loader_entry else { return Ok(None) };
    if !good {
        for op in rootstock_core::plan::mask_bless_boot(run) {
            sys.execute(&op)
                .map_err(|e| format!("masking systemd-bless-boot: {}: {e}", op.target().display()))?;
        }
    }
    let blesser = root.join(SYSTEMD_BLESS_BOOT);
    if blesser.exists() {
        if good {
            return Ok(Some(format!("boot loader entry {entry}: left to systemd-bless-boot")));
        }
        let out = std::process::Command::new(&blesser)
            .arg("bad")
            .output()
            .map_err(|e| format!("{}: {e}", blesser.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("{} bad: {}", blesser.display(), rootstock_core::text::one_line(err.trim())));
        }
        return Ok(Some(format!("boot loader entry {entry}: marked bad by systemd-bless-boot")));
    }
    let Some(esp) = find(root, esp) else {
        return Err(format!(
            "{entry}: no ESP mounted at /efi or /boot/efi (--esp), and no systemd-bless-boot: \
             the boot loader keeps counting it"
        ));
    };
    Ok(Some(match bless(&esp, entry, good).map_err(|e| e.to_string())? {
        Blessed::Renamed(old, new) => format!("boot loader entry {old} is now {new} on {}", esp.display()),
        Blessed::Already(name) => format!("boot loader entry {name} on {}: so already", esp.display()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootstock_core::testutil::TempDir;

    #[test]
    fn good_drops_the_counter_bad_zeroes_it() {
        assert_eq!(blessed_name("ostree-1+1-1.conf", true).as_deref(), Some("ostree-1.conf"));
        assert_eq!(blessed_name("ostree-1+1-1.conf", false).as_deref(), Some("ostree-1+0-1.conf"));
        assert_eq!(blessed_name("a+b+3.conf", true).as_deref(), Some("a+b.conf"));
        assert_eq!(blessed_name("ostree-2+3.conf", false).as_deref(), Some("ostree-2+0-0.conf"));
        assert_eq!(blessed_name("ostree-1.conf", true), None);
    }

    #[test]
    fn only_a_plain_name_in_loader_entries_is_an_entry() {
        assert_eq!(entry_file("/loader/entries/ostree-1+2-1.conf"), Some("ostree-1+2-1.conf"));
        for bad in ["/loader/entries/../../x+1.conf", "/loader/entries/", "/EFI/x+1.conf", "loader/entries/a"]
        {
            assert_eq!(entry_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn entries_say_which_deployment_they_boot() {
        let t = TempDir::new();
        let dir = t.path().join("loader/entries");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ostree-2+0-2.conf"),
            "title 2\noptions root=x ostree=/ostree/boot.0/d/c/0\n",
        )
        .unwrap();
        std::fs::write(dir.join("ostree-1+1-1.conf"), "title 1\noptions ostree=/ostree/boot.0/d/c/1 rw\n")
            .unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.join("evil+1.conf")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo+1.conf"),
            rustix::fs::FileType::Fifo,
            0o644.into(),
            0,
        )
        .unwrap();
        std::fs::write(dir.join("big+1.conf"), vec![b'x'; ENTRY_CAP as usize + 1]).unwrap();
        let (es, problems) = entries(t.path());
        let got: Vec<_> = es.iter().map(|e| (e.file.as_str(), e.ostree.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("ostree-1+1-1.conf", Some("/ostree/boot.0/d/c/1")),
                ("ostree-2+0-2.conf", Some("/ostree/boot.0/d/c/0"))
            ]
        );
        // The symlink out of the ESP, the FIFO (no hang) and the big one are not read.
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("FIFO")) && problems.iter().any(|p| p.contains("limit")));
        assert_eq!(find(Path::new("/nonexistent"), None), None);
    }

    #[test]
    fn a_flood_of_names_is_cut_and_said() {
        let t = TempDir::new();
        let dir = t.path().join("loader/entries");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..MAX_ENTRIES + 10 {
            std::fs::write(dir.join(format!("junk-{i}.conf")), "").unwrap();
        }
        let (es, problems) = entries(t.path());
        assert!(es.len() <= MAX_ENTRIES);
        assert!(problems.iter().any(|p| p.contains("more than 1024 names")), "{problems:?}");
    }

    #[test]
    fn bless_renames_the_counted_entry_once() {
        let t = TempDir::new();
        let dir = t.path().join("loader/entries");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ostree-1+1-1.conf"), "options ostree=/x\n").unwrap();
        let e1 = "/loader/entries/ostree-1+1-1.conf";
        let got = bless(t.path(), e1, true).unwrap();
        assert_eq!(got, Blessed::Renamed("ostree-1+1-1.conf".into(), "ostree-1.conf".into()));
        assert!(dir.join("ostree-1.conf").is_file() && !dir.join("ostree-1+1-1.conf").exists());
        // Twice: so already, nothing changed.
        assert_eq!(bless(t.path(), e1, true).unwrap(), Blessed::Already("ostree-1.conf".into()));
        // systemd-boot took the last try: +0-3 is bad already.
        std::fs::write(dir.join("ostree-3+0-3.conf"), "c").unwrap();
        let last = bless(t.path(), "/loader/entries/ostree-3+0-3.conf", false).unwrap();
        assert_eq!(last, Blessed::Already("ostree-3+0-3.conf".into()));
        // Bad, then good in the same boot (as systemd-bless-boot allows).
        std::fs::write(dir.join("ostree-4+1-1.conf"), "d").unwrap();
        bless(t.path(), "/loader/entries/ostree-4+1-1.conf", false).unwrap();
        let again = bless(t.path(), "/loader/entries/ostree-4+1-1.conf", true).unwrap();
        assert_eq!(again, Blessed::Renamed("ostree-4+0-1.conf".into(), "ostree-4.conf".into()));
        // The good name taken: refused, both kept.
        std::fs::write(dir.join("ostree-2+1-1.conf"), "a").unwrap();
        std::fs::write(dir.join("ostree-2.conf"), "b").unwrap();
        assert!(bless(t.path(), "/loader/entries/ostree-2+1-1.conf", true).is_err());
        assert_eq!(std::fs::read(dir.join("ostree-2.conf")).unwrap(), b"b");
        // Bad: +0-DONE.
        bless(t.path(), "/loader/entries/ostree-2+1-1.conf", false).unwrap();
        assert!(dir.join("ostree-2+0-1.conf").is_file());
        // loader/ a symlink to another directory: not followed.
        let other = TempDir::new();
        std::fs::create_dir_all(other.path().join("real/entries")).unwrap();
        std::fs::write(other.path().join("real/entries/x+1-1.conf"), "e").unwrap();
        std::os::unix::fs::symlink(other.path().join("real"), other.path().join("loader")).unwrap();
        let err = bless(other.path(), "/loader/entries/x+1-1.conf", true).unwrap_err().to_string();
        assert!(err.contains("ELOOP") || err.contains("ENOTDIR"), "{err}");
        assert!(other.path().join("real/entries/x+1-1.conf").exists());
        // Not an entry, not counted.
        assert!(matches!(
            bless(t.path(), "/loader/entries/../x+1.conf", true),
            Err(BlessError::NotAnEntry(_))
        ));
        assert!(matches!(
            bless(t.path(), "/loader/entries/ostree-1.conf", true),
            Err(BlessError::NotCounted(_))
        ));
    }
}
