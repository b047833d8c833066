//! Path resolution strictly inside a root directory.
//!
//! Every component is looked up with `lstat` below `root` and symlinks are
//! followed by hand, so nothing can leave the root: an absolute symlink is
//! taken relative to the root (as `openat2(RESOLVE_IN_ROOT)` does), and a `..`
//! that would climb above the root is refused rather than clamped.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::errno::Errno;

/// Linux's own limit on symlinks followed in one lookup.
pub const MAX_SYMLINKS: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A `..` climbs above the root (`at` is the path that held it).
    #[error("symlink or `..` at /{} climbs out of the physical root (refused)", at.display())]
    Escapes { at: PathBuf },
    /// More than [`MAX_SYMLINKS`] symlinks: a loop.
    #[error("more than {MAX_SYMLINKS} symlinks at /{} (a symlink loop)", at.display())]
    Loop { at: PathBuf },
    /// A component does not exist or cannot be read.
    #[error("/{}: {errno}", at.display())]
    Missing { at: PathBuf, errno: Errno },
    /// A component that must be a directory is not one.
    #[error("/{} is not a directory", at.display())]
    NotADirectory { at: PathBuf },
}

/// Resolve `path` (absolute or relative, always taken from `root`) inside
/// `root`. Returns the resolved path relative to `root`, without symlinks.
/// The final component must exist.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<PathBuf, ResolveError> {
    let fd = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ResolveError::Missing { at: PathBuf::new(), errno: e.into() })?;
    resolve_at(&fd, path)
}

/// [`resolve_in_root`] on a directory handle of the root: every lookup is
/// relative to `root`, so the root's own path is never looked up again.
pub fn resolve_at(root: &OwnedFd, path: &Path) -> Result<PathBuf, ResolveError> {
    let mut done: Vec<OsString> = Vec::new();
    // Remaining components, in reverse so the next one is at the end.
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        if comp == "." {
            continue;
        }
        if comp == ".." {
            if done.pop().is_none() {
                return Err(ResolveError::Escapes { at: join(&done) });
            }
            continue;
        }
        done.push(comp);
        let rel = join(&done);
        let missing = |e: rustix::io::Errno| ResolveError::Missing { at: rel.clone(), errno: e.into() };
        let st = rustix::fs::statat(root, &rel, AtFlags::SYMLINK_NOFOLLOW).map_err(missing)?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Symlink {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(ResolveError::Loop { at: rel });
            }
            let target = rustix::fs::readlinkat(root, &rel, Vec::new()).map_err(missing)?;
            let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
            done.pop();
            if target.is_absolute() {
                done.clear();
            }
            push_components(&mut todo, &target);
        } else if !todo.is_empty() && kind != FileType::Directory {
            return Err(ResolveError::NotADirectory { at: rel });
        }
    }
    Ok(join(&done))
}

fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let comps: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(comps.into_iter().rev());
}

fn join(parts: &[OsString]) -> PathBuf {
    parts.iter().collect()
}

/// Show a path from the filesystem in a message, whatever its bytes.
pub fn show(p: &OsStr) -> String {
    String::from_utf8_lossy(p.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> crate::testutil::TempDir {
        let t = crate::testutil::TempDir::new();
        std::fs::create_dir_all(t.path().join("a/b/c")).unwrap();
        std::fs::write(t.path().join("a/b/c/file"), "x").unwrap();
        symlink("b/c", t.path().join("a/rel")).unwrap();
        symlink("/a/b", t.path().join("abs")).unwrap();
        symlink("../../..", t.path().join("a/b/up3")).unwrap();
        symlink("../..", t.path().join("a/b/up2")).unwrap();
        symlink("loop2", t.path().join("loop1")).unwrap();
        symlink("loop1", t.path().join("loop2")).unwrap();
        symlink("/etc/passwd", t.path().join("hostfile")).unwrap();
        t
    }

    #[test]
    fn resolves_inside_the_root() {
        let t = tree();
        let ok = |p: &str| resolve_in_root(t.path(), Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(ok("/a/rel/file").unwrap(), "a/b/c/file");
        assert_eq!(ok("a/rel/./file").unwrap(), "a/b/c/file");
        assert_eq!(ok("/abs/c").unwrap(), "a/b/c");
        assert_eq!(ok("/a/b/up2/a").unwrap(), "a");
        assert_eq!(ok("/a/b/c/../../rel").unwrap(), "a/b/c");
        assert_eq!(ok("/").unwrap(), "");
    }

    #[test]
    fn refuses_escapes_loops_and_host_paths() {
        let t = tree();
        let err = |p: &str| resolve_in_root(t.path(), Path::new(p)).unwrap_err();
        assert!(matches!(err("/a/b/up3"), ResolveError::Escapes { .. }));
        assert!(matches!(err("/.."), ResolveError::Escapes { .. }));
        assert!(matches!(err("/loop1"), ResolveError::Loop { .. }));
        // An absolute symlink is looked up in the root, never on the host.
        assert!(matches!(err("/hostfile"), ResolveError::Missing { errno: Errno::NOENT, .. }));
        assert!(matches!(err("/a/b/c/file/x"), ResolveError::NotADirectory { .. }));
        assert!(err("/a/b/up3").to_string().contains("climbs out of the physical root"));
        assert!(err("/loop1").to_string().contains("symlink loop"));
    }

    #[test]
    fn non_utf8_names_resolve_and_display() {
        let t = tree();
        let name = OsString::from_vec(vec![b'x', 0xff, b'y']);
        std::fs::create_dir(t.path().join(&name)).unwrap();
        let got = resolve_in_root(t.path(), Path::new(&name)).unwrap();
        assert_eq!(got.as_os_str(), name.as_os_str());
        assert_eq!(show(&name), "x\u{fffd}y");
    }
}
