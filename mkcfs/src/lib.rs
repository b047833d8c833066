//! Write an OSTree deployment's composefs image, `.ostree.cfs` in the
//! deployment directory, the way ostree >= 2023.4 does (Debian 12's ostree
//! 2022.7 cannot): an EROFS image of the deployment's tree in which each
//! regular file stores no data but points, with the overlayfs xattrs
//! `trusted.overlay.redirect` and `trusted.overlay.metacopy`, at its object
//! in the repository (`/XX/YYYY.file`) and carries that object's fs-verity
//! digest. Mounted as the lower layer of an overlay whose data-only layer
//! is `ostree/repo/objects`, it shows the deployment's tree.
//!
//! Test tooling: not shipped.

mod erofs;
mod verity;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use verity::verity_digest;

/// The image's name in the deployment directory.
pub const IMAGE_NAME: &str = ".ostree.cfs";

/// How to write the image.
#[derive(Clone, Debug)]
pub struct Options {
    /// Enable fs-verity on every object the image names and on the image,
    /// and check that the kernel's digests are the ones computed here.
    pub enable_verity: bool,
    /// Put each object's fs-verity digest into its metacopy xattr; without,
    /// the xattr is empty (no digest: overlayfs cannot check the data).
    pub digests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { enable_verity: false, digests: true }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: a regular file that is not an object of {}", path.display(), objects.display())]
    NotAnObject { path: PathBuf, objects: PathBuf },
    #[error("{}: enabling fs-verity: {source}", path.display())]
    EnableVerity { path: PathBuf, source: rustix::io::Errno },
    #[error("{}: measuring fs-verity: {source}", path.display())]
    MeasureVerity { path: PathBuf, source: rustix::io::Errno },
    #[error("{}: the kernel's fs-verity digest {kernel} is not ours, {ours}", path.display())]
    VerityMismatch { path: PathBuf, kernel: String, ours: String },
    #[error("{}: {source}", path.display())]
    Format { path: PathBuf, source: erofs::FormatError },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The objects of the repository `objects` (`objects/XX/YYYY.file`) by
/// device and inode, each as its path below `objects`.
fn objects_by_inode(objects: &Path) -> Result<HashMap<(u64, u64), String>, Error> {
    let mut map = HashMap::new();
    for dir in fs::read_dir(objects).map_err(io_err(objects))? {
        let dir = dir.map_err(io_err(objects))?;
        let prefix = dir.file_name();
        let Some(prefix) = prefix.to_str().filter(|p| p.len() == 2) else { continue };
        if !dir.file_type().map_err(io_err(&dir.path()))?.is_dir() {
            continue;
        }
        let dir_path = dir.path();
        for obj in fs::read_dir(&dir_path).map_err(io_err(&dir_path))? {
            let obj = obj.map_err(io_err(&dir_path))?;
            let name = obj.file_name();
            let Some(name) = name.to_str().filter(|n| n.ends_with(".file")) else { continue };
            let path = obj.path();
            let st = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            if st.file_type().is_file() {
                map.insert((st.dev(), st.ino()), format!("{prefix}/{name}"));
            }
        }
    }
    Ok(map)
}

/// The repository object that `file` (in a deployment of the physical root
/// at `physical_root`) is a hardlink of: `ostree/repo/objects/XX/YYYY.file`.
pub fn object_of(physical_root: &Path, file: &Path) -> Result<PathBuf, Error> {
    let objects = physical_root.join("ostree/repo/objects");
    let st = fs::symlink_metadata(file).map_err(io_err(file))?;
    match objects_by_inode(&objects)?.remove(&(st.dev(), st.ino())) {
        Some(rel) => Ok(objects.join(rel)),
        None => Err(Error::NotAnObject { path: file.to_owned(), objects }),
    }
}

/// What the walk of the deployment collects.
struct Walk<'a> {
    objects_dir: PathBuf,
    objects: HashMap<(u64, u64), String>,
    /// Each referenced object's digest, computed (and checked) once.
    digests: HashMap<(u64, u64), [u8; 32]>,
    opts: &'a Options,
    nodes: Vec<erofs::Node>,
}

fn meta(st: &fs::Metadata) -> erofs::Meta {
    erofs::Meta {
        mode: st.mode(),
        uid: st.uid(),
        gid: st.gid(),
        // ostree's images have every mtime 0 (OSTREE_TIMESTAMP: a commit
        // records none). A checkout's files and directories have it too,
        // but not its symlinks (the checkout's time), nor the deployment
        // directory and its etc once written to: the image depends on the
        // tree alone, as ostree's does.
        mtime: 0,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    }
}

fn trusted(name: &str, value: Vec<u8>) -> erofs::Xattr {
    erofs::Xattr { index: erofs::XATTR_INDEX_TRUSTED, name: name.as_bytes().to_vec(), value }
}

impl Walk<'_> {
    /// Add `path` (described by `st`) and, for a directory, what is in it,
    /// unless `empty`; the new node's index.
    fn add(&mut self, path: &Path, st: &fs::Metadata, top: bool, empty: bool) -> Result<usize, Error> {
        let index = self.nodes.len();
        let ft = st.file_type();
        let mut m = meta(st);
        let kind = if ft.is_dir() {
            erofs::Kind::Dir(BTreeMap::new())
        } else if ft.is_file() {
            let key = (st.dev(), st.ino());
            let Some(object) = self.objects.get(&key).cloned() else {
                return Err(Error::NotAnObject { path: path.to_owned(), objects: self.objects_dir.clone() });
            };
            let object_path = self.objects_dir.join(&object);
            let digest = self.digest(key, &object_path)?;
            let metacopy = if self.opts.digests {
                // struct ovl_metacopy: version 0, its length, flags 0,
                // FS_VERITY_HASH_ALG_SHA256, the digest.
                let mut v = vec![0, 36, 0, 1];
                v.extend_from_slice(&digest);
                v
            } else {
                Vec::new()
            };
            m.xattrs.push(trusted("overlay.metacopy", metacopy));
            m.xattrs.push(trusted("overlay.redirect", format!("/{object}").into_bytes()));
            erofs::Kind::File { size: st.len() }
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(io_err(path))?;
            erofs::Kind::Symlink(target.as_os_str().as_bytes().to_vec())
        } else {
            let rdev = st.rdev();
            let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
            // The kernel's new_encode_dev.
            erofs::Kind::Special { rdev: (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12) }
        };
        self.nodes.push(erofs::Node { meta: m, kind });
        if ft.is_dir() && !empty {
            let mut entries = BTreeMap::new();
            // By name, not in the directory's order (a filesystem's own):
            // the image, and so its digest, depends on the tree alone.
            let mut names = Vec::new();
            for entry in fs::read_dir(path).map_err(io_err(path))? {
                names.push(entry.map_err(io_err(path))?.file_name());
            }
            names.sort();
            for name in names {
                let bytes = name.as_bytes();
                if top && (bytes == IMAGE_NAME.as_bytes() || bytes.starts_with(b".usr-ovl-")) {
                    continue;
                }
                if top && bytes.starts_with(format!("{IMAGE_NAME}.tmp").as_bytes()) {
                    continue;
                }
                let child_path = path.join(&name);
                let child_st = fs::symlink_metadata(&child_path).map_err(io_err(&child_path))?;
                // /etc is bind-mounted from the deployment directory over
                // the image's, which is empty.
                let etc = top && bytes == b"etc" && child_st.is_dir();
                let child = self.add(&child_path, &child_st, false, etc)?;
                entries.insert(bytes.to_vec(), child);
            }
            self.nodes[index].kind = erofs::Kind::Dir(entries);
        }
        Ok(index)
    }

    /// The fs-verity digest of the object at `path`; with
    /// `enable_verity`, enabled on it and checked against the kernel's.
    fn digest(&mut self, key: (u64, u64), path: &Path) -> Result<[u8; 32], Error> {
        if let Some(d) = self.digests.get(&key) {
            return Ok(*d);
        }
        let file = fs::File::open(path).map_err(io_err(path))?;
        let digest = verity_digest(&file).map_err(io_err(path))?;
        if self.opts.enable_verity {
            drop(file);
            check_verity(path, &digest)?;
        }
        self.digests.insert(key, digest);
        Ok(digest)
    }
}

/// Enable fs-verity on the file at `path` (fine if it already is) and
/// check that the kernel's digest is `digest`.
fn check_verity(path: &Path, digest: &[u8; 32]) -> Result<(), Error> {
    use std::os::fd::AsFd;
    let file = fs::File::open(path).map_err(io_err(path))?;
    match rootstock_sys::verity::enable(file.as_fd()) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(source) => return Err(Error::EnableVerity { path: path.to_owned(), source }),
    }
    let kernel = rootstock_sys::verity::measure(file.as_fd())
        .map_err(|source| Error::MeasureVerity { path: path.to_owned(), source })?;
    if &kernel != digest {
        return Err(Error::VerityMismatch { path: path.to_owned(), kernel: hex(&kernel), ours: hex(digest) });
    }
    Ok(())
}

/// The composefs image of the deployment `deployment` (relative to
/// `physical_root`, e.g. `ostree/deploy/OS/deploy/CSUM.0`), as bytes.
pub fn image(physical_root: &Path, deployment: &Path, opts: &Options) -> Result<Vec<u8>, Error> {
    let dir = physical_root.join(deployment);
    let objects_dir = physical_root.join("ostree/repo/objects");
    let objects = objects_by_inode(&objects_dir)?;
    let mut walk = Walk { objects_dir, objects, digests: HashMap::new(), opts, nodes: Vec::new() };
    let st = fs::symlink_metadata(&dir).map_err(io_err(&dir))?;
    if !st.is_dir() {
        return Err(Error::Io { path: dir, source: rustix::io::Errno::NOTDIR.into() });
    }
    walk.add(&dir, &st, true, false)?;
    erofs::write(&walk.nodes).map_err(|source| Error::Format { path: dir, source })
}

/// Write the deployment's composefs image, `.ostree.cfs` in its directory,
/// atomically (a temporary file in the same directory, synced, renamed;
/// mode 0644); its fs-verity digest, the value of the commit metadata key
/// `ostree.composefs.digest.v0`. With `enable_verity`, fs-verity is enabled
/// on the image (before the rename) and on every object it names. The
/// deployment directory is immutable (`chattr +i`, as ostree leaves it):
/// the flag is cleared for the write and set again.
pub fn write_image(physical_root: &Path, deployment: &Path, opts: &Options) -> Result<[u8; 32], Error> {
    use rustix::fs::IFlags;
    let bytes = image(physical_root, deployment, opts)?;
    let digest = verity_digest(&bytes[..]).map_err(io_err(deployment))?;
    let dir = physical_root.join(deployment);
    let dir_fd = fs::File::open(&dir).map_err(io_err(&dir))?;
    let flags = rustix::fs::ioctl_getflags(&dir_fd).unwrap_or(IFlags::empty());
    let immutable = flags.contains(IFlags::IMMUTABLE);
    if immutable {
        rustix::fs::ioctl_setflags(&dir_fd, flags - IFlags::IMMUTABLE).map_err(|e| io_err(&dir)(e.into()))?;
    }
    let result = write_atomically(&dir, &bytes, opts.enable_verity.then_some(&digest));
    if immutable {
        let restored = rustix::fs::ioctl_setflags(&dir_fd, flags).map_err(|e| io_err(&dir)(e.into()));
        result.as_ref().ok().map(|_| restored).transpose()?;
    }
    result?;
    dir_fd.sync_all().map_err(io_err(&dir))?;
    Ok(digest)
}

/// Write `bytes` to `.ostree.cfs` in `dir` through a temporary file; with
/// `verity`, enable fs-verity on it and check the kernel's digest is that.
fn write_atomically(dir: &Path, bytes: &[u8], verity: Option<&[u8; 32]>) -> Result<(), Error> {
    let path = dir.join(IMAGE_NAME);
    let tmp = dir.join(format!("{IMAGE_NAME}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.set_permissions(fs::Permissions::from_mode(0o644)).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        if let Some(digest) = verity {
            check_verity(&tmp, digest)?;
        }
        fs::rename(&tmp, &path).map_err(io_err(&path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
