//! mkcfs against the kernel: the userspace fs-verity digests against
//! FS_IOC_MEASURE_VERITY, and images mounted as ostree mounts them (EROFS
//! loop mount, overlay with the repository's objects as data-only layer),
//! with and without fs-verity. Root only (loop devices, mounts): skipped
//! with a message otherwise.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use rootstock_mkcfs::{Options, object_of, verity_digest, write_image};
use rootstock_sys::verity;

/// A directory removed (immutable flags cleared first) when dropped.
struct TmpDir(PathBuf);

impl TmpDir {
    /// A new directory under `base` (`/dev/shm`: a tmpfs, which
    /// make-sysroot.sh needs).
    fn new(base: &str, what: &str) -> TmpDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!("{base}/mkcfs-test-{}-{what}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).unwrap();
        TmpDir(path)
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        // ostree leaves each deployment directory immutable.
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.0)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A mount, unmounted when dropped (a loop device with it: `mount -o loop`
/// sets autoclear).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Say that a test is skipped, and why, on the real stderr (what
/// `eprintln!` writes the test harness hides unless the test fails).
fn skip(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// Where the kernel has no fs-verity: skipped, unless
/// `MKCFS_REQUIRE_VERITY` is set (then the test fails).
fn skip_no_kernel_verity(also: &str) {
    let why = format!("{NO_KERNEL_VERITY}{also}");
    assert!(std::env::var_os("MKCFS_REQUIRE_VERITY").is_none(), "{why}");
    skip(&why);
}

/// Why these tests cannot run here, if they cannot.
fn cannot_run() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() { Some("not root") } else { None }
}

/// `mount ARGS... TARGET`: the mount, or `Err` with mount's message when
/// the kernel refused with EPERM (a container without the capability):
/// the caller skips. Any other failure fails the test.
fn mount(args: &[&str], target: &Path) -> Result<Mounted, String> {
    fs::create_dir_all(target).unwrap();
    let out = Command::new("mount").args(args).arg(target).output().expect("running mount");
    if out.status.success() {
        return Ok(Mounted(target.to_owned()));
    }
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if err.contains("ermission denied") || err.contains("not permitted") || err.contains("must be superuser")
    {
        return Err(err);
    }
    panic!("mount {args:?} {}: {err}", target.display());
}

macro_rules! mount_or_skip {
    ($args:expr, $target:expr) => {
        match mount($args, $target) {
            Ok(m) => m,
            Err(e) => {
                skip(&format!("mount refused (EPERM): {e}"));
                return;
            }
        }
    };
}

/// An ext4 filesystem with the verity feature, loop-mounted at `dir/mnt`.
fn ext4_verity(dir: &Path, size: &str) -> Result<Mounted, String> {
    let img = dir.join("ext4.img");
    // Made first: mkfs.ext4 would say it creates it.
    fs::File::create(&img).unwrap();
    let status = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-b", "4096", "-O", "verity"])
        .arg(&img)
        .arg(size)
        .status()
        .expect("running mkfs.ext4");
    assert!(status.success(), "mkfs.ext4 -O verity failed");
    mount(&["-t", "ext4", "-o", "loop", img.to_str().unwrap()], &dir.join("mnt"))
}

/// Reproducible bytes that differ from file to file.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Sizes around the block size and across tree levels: 129 blocks need two
/// hash blocks, 1 MiB + 3 (257 blocks) a tree of two levels.
const SIZES: [usize; 9] = [0, 1, 4095, 4096, 4097, 8192, 128 * 4096, 129 * 4096, (1 << 20) + 3];

/// Whether the kernel does fs-verity on the filesystem at `dir` (one with
/// the feature): EOPNOTSUPP when it was built without CONFIG_FS_VERITY.
fn kernel_verity(dir: &Path) -> bool {
    let probe = dir.join("verity-probe");
    fs::write(&probe, "probe").unwrap();
    let r = verity::enable(fs::File::open(&probe).unwrap().as_fd());
    fs::remove_file(&probe).unwrap();
    match r {
        Ok(()) => true,
        Err(rustix::io::Errno::OPNOTSUPP) => false,
        Err(e) => panic!("enabling fs-verity on ext4 -O verity: {e}"),
    }
}

const NO_KERNEL_VERITY: &str = "this kernel has no fs-verity (FS_IOC_ENABLE_VERITY on ext4 -O verity: \
     EOPNOTSUPP; CONFIG_FS_VERITY is not set)";

#[test]
fn userspace_verity_digest_is_the_kernels() {
    if let Some(why) = cannot_run() {
        skip(why);
        return;
    }
    let tmp = TmpDir::new("/tmp", "verity");
    let _ext4 = match ext4_verity(&tmp.0, "64M") {
        Ok(m) => m,
        Err(e) => {
            skip(&format!("mount refused (EPERM): {e}"));
            return;
        }
    };
    let mnt = tmp.0.join("mnt");
    if !kernel_verity(&mnt) {
        skip_no_kernel_verity("");
        return;
    }
    for (i, size) in SIZES.into_iter().enumerate() {
        let path = mnt.join(format!("f{size}"));
        let data = pattern(size, i as u32 + 1);
        fs::write(&path, &data).unwrap();
        let ours = verity_digest(&data[..]).unwrap();
        let f = fs::File::open(&path).unwrap();
        assert_eq!(
            verity::measure(f.as_fd()),
            Err(rustix::io::Errno::NODATA),
            "size {size}: before enabling"
        );
        verity::enable(f.as_fd()).unwrap_or_else(|e| panic!("size {size}: enabling fs-verity: {e}"));
        assert_eq!(verity::enable(f.as_fd()), Err(rustix::io::Errno::EXIST), "size {size}: enabled twice");
        let kernel = verity::measure(f.as_fd()).unwrap();
        assert_eq!(kernel, ours, "size {size}: kernel's digest, ours");
        // Reading from the file itself gives the same.
        assert_eq!(verity_digest(&f).unwrap(), ours, "size {size}: digest read from the file");
    }
}

/// The same sizes against fsverity-utils' `fsverity digest`, which computes
/// it in userspace too: an independent implementation, for kernels
/// without fs-verity.
#[test]
fn userspace_verity_digest_is_fsverity_utils() {
    let tmp = TmpDir::new("/tmp", "fsverity-utils");
    for (i, size) in SIZES.into_iter().enumerate() {
        let path = tmp.0.join(format!("f{size}"));
        let data = pattern(size, i as u32 + 1);
        fs::write(&path, &data).unwrap();
        let out = match Command::new("fsverity")
            .args(["digest", "--hash-alg=sha256", "--block-size=4096"])
            .arg(&path)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                skip(&format!("fsverity (fsverity-utils) cannot run: {e}"));
                return;
            }
        };
        assert!(out.status.success(), "fsverity digest: {}", String::from_utf8_lossy(&out.stderr));
        let theirs = String::from_utf8(out.stdout).unwrap();
        let ours = rootstock_mkcfs::hex(&verity_digest(&data[..]).unwrap());
        assert_eq!(theirs.split_whitespace().next(), Some(&*format!("sha256:{ours}")), "size {size}");
    }
}

/// A sysroot made by tests/fixtures/make-sysroot.sh with one deployment,
/// in `dir/sysroot` (`dir` on a tmpfs); the deployment's path relative to
/// the sysroot.
fn make_sysroot(dir: &Path) -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/make-sysroot.sh");
    let phys = dir.join("sysroot");
    let out = Command::new(&script).arg(&phys).arg("1").output().expect("running make-sysroot.sh");
    assert!(out.status.success(), "make-sysroot.sh: {}", String::from_utf8_lossy(&out.stderr));
    let deploy = Path::new("ostree/deploy/testos/deploy");
    let mut names: Vec<_> = fs::read_dir(phys.join(deploy))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".origin"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    (phys, deploy.join(names.pop().unwrap()))
}

/// Every mtime below `root`.
fn mtimes(root: &Path) -> std::collections::BTreeSet<i64> {
    let mut out = std::collections::BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let st = fs::symlink_metadata(&p).unwrap();
        out.insert(st.mtime());
        if st.is_dir() {
            todo.extend(fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

/// What a tree shows: each path with its type, mode, owner, size, mtime
/// and symlink target, or file contents.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let path = root.join(rel);
        let st = fs::symlink_metadata(&path).unwrap();
        let what = if st.is_dir() {
            for e in fs::read_dir(&path).unwrap() {
                let name = e.unwrap().file_name();
                if rel.as_os_str().is_empty() && (name == ".ostree.cfs" || name == "etc") {
                    continue;
                }
                walk(root, &rel.join(name), out);
            }
            "dir".to_owned()
        } else if st.is_symlink() {
            format!("-> {}", fs::read_link(&path).unwrap().display())
        } else if !st.is_file() {
            format!("special {:x}", st.rdev())
        } else {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(data.len() as u64, st.len(), "{}", path.display());
            format!("{:?}", String::from_utf8_lossy(&data))
        };
        // Directory sizes are the filesystem's own.
        let size = if st.is_dir() { "-".to_owned() } else { st.len().to_string() };
        // Every mtime is 0 in the image, as in ostree's (a commit records
        // none); the checkout's symlinks and the deployment directory have
        // their own. Compared apart (see `mtimes`).
        let mtime = "-";
        out.insert(
            rel.to_owned(),
            format!("{:o} {}:{} {size} {mtime} {what}", st.mode(), st.uid(), st.gid()),
        );
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// `etc` in the image: empty, with the deployment's etc's mode and owner.
fn check_etc(mounted: &Path, deployment: &Path) {
    let (a, b) = (fs::metadata(mounted.join("etc")).unwrap(), fs::metadata(deployment.join("etc")).unwrap());
    assert_eq!((a.mode(), a.uid(), a.gid()), (b.mode(), b.uid(), b.gid()));
    assert_eq!(fs::read_dir(mounted.join("etc")).unwrap().count(), 0, "etc is empty in the image");
    assert!(fs::read_dir(deployment.join("etc")).unwrap().count() > 0, "the deployment's etc is not");
}

fn overlay_opts(meta: &Path, objects: &Path, extra: &str) -> String {
    format!("ro,lowerdir={}::{},metacopy=on,redirect_dir=on{extra}", meta.display(), objects.display())
}

#[test]
fn image_mounted_as_ostree_does_shows_the_deployment() {
    if let Some(why) = cannot_run() {
        skip(why);
        return;
    }
    let tmp = TmpDir::new("/dev/shm", "e2e");
    let (phys, deployment) = make_sysroot(&tmp.0);
    let dep = phys.join(&deployment);
    let out = Command::new(env!("CARGO_BIN_EXE_mkcfs"))
        .arg("--physical-root")
        .arg(&phys)
        .arg("--deployment")
        .arg(&deployment)
        .output()
        .unwrap();
    assert!(out.status.success(), "mkcfs: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let image = dep.join(".ostree.cfs");
    let bytes = fs::read(&image).unwrap();
    assert_eq!(printed, format!("{}\n", rootstock_mkcfs::hex(&verity_digest(&bytes[..]).unwrap())));
    assert_eq!(fs::metadata(&image).unwrap().permissions().mode() & 0o7777, 0o644);
    // Written again, the same image (and the directory stays immutable).
    let again = write_image(&phys, &deployment, &Options::default()).unwrap();
    assert_eq!(printed.trim(), rootstock_mkcfs::hex(&again));
    assert_eq!(fs::read(&image).unwrap(), bytes);
    assert!(fs::write(dep.join("new-file"), "x").is_err(), "the deployment directory is immutable again");

    let fsck = Command::new("fsck.erofs").arg(&image).output().unwrap();
    assert!(fsck.status.success(), "fsck.erofs: {}", String::from_utf8_lossy(&fsck.stderr));

    let meta = tmp.0.join("meta");
    let _erofs = mount_or_skip!(&["-t", "erofs", "-o", "ro,loop", image.to_str().unwrap()], &meta);
    let target = tmp.0.join("target");
    let objects = phys.join("ostree/repo/objects");
    let opts = overlay_opts(&meta, &objects, "");
    let _overlay = mount_or_skip!(&["-t", "overlay", "overlay", "-o", &opts], &target);
    let (want, got) = (tree(&dep), tree(&target));
    assert_eq!(mtimes(&target), [0].into(), "every mtime 0, as in ostree's images");
    assert!(want.len() > 20, "{want:#?}");
    assert_eq!(got, want);
    check_etc(&target, &dep);

    // With empty metacopy xattrs (no digests), the same.
    let no_digests = Options { digests: false, ..Options::default() };
    let other = write_image(&phys, &deployment, &no_digests).unwrap();
    assert_ne!(rootstock_mkcfs::hex(&other), printed.trim());
    let meta = tmp.0.join("meta-no-digests");
    let _erofs = mount_or_skip!(&["-t", "erofs", "-o", "ro,loop", image.to_str().unwrap()], &meta);
    let target = tmp.0.join("target-no-digests");
    let opts = overlay_opts(&meta, &objects, "");
    let _overlay = mount_or_skip!(&["-t", "overlay", "overlay", "-o", &opts], &target);
    assert_eq!(tree(&target), want);
}

/// Replace `object` by a file of other contents, with fs-verity enabled
/// on it or not, renamed over it.
fn tamper(object: &Path, verity_on: bool) {
    let tmp = object.with_extension("tampered");
    let mut f = fs::File::create(&tmp).unwrap();
    f.write_all(b"tampered with\n").unwrap();
    f.set_permissions(fs::Permissions::from_mode(0o644)).unwrap();
    drop(f);
    if verity_on {
        verity::enable(fs::File::open(&tmp).unwrap().as_fd()).unwrap();
    }
    fs::rename(&tmp, object).unwrap();
}

fn read_errno(path: &Path) -> Option<i32> {
    fs::read(path).err().map(|e| e.raw_os_error().unwrap_or(-1))
}

#[test]
fn image_with_verity_required_reads_only_untampered_objects() {
    if let Some(why) = cannot_run() {
        skip(why);
        return;
    }
    let tmp = TmpDir::new("/dev/shm", "verity");
    let (made, deployment) = make_sysroot(&tmp.0);
    let ext4 = match ext4_verity(&tmp.0, "128M") {
        Ok(m) => m,
        Err(e) => {
            skip(&format!("mount refused (EPERM): {e}"));
            return;
        }
    };
    // The same sysroot on a filesystem with fs-verity (cp -a keeps the
    // hardlinks between the deployment and the repository).
    let phys = ext4.0.join("sysroot");
    let cp = Command::new("cp").arg("-a").arg(&made).arg(&phys).status().unwrap();
    assert!(cp.success());
    let dep = phys.join(&deployment);
    let opts = Options { enable_verity: true, ..Options::default() };
    if !kernel_verity(&ext4.0) {
        // Then --enable-verity fails, naming the object it could not do.
        let err = write_image(&phys, &deployment, &opts).unwrap_err();
        assert!(
            matches!(&err, rootstock_mkcfs::Error::EnableVerity { path, source: rustix::io::Errno::OPNOTSUPP }
                if path.starts_with(phys.join("ostree/repo/objects"))),
            "{err}"
        );
        assert!(!dep.join(".ostree.cfs").exists());
        // What can be seen still: with verity=require, overlayfs refuses
        // to read an object without fs-verity ("has no fs-verity digest").
        let image = dep.join(".ostree.cfs");
        write_image(&phys, &deployment, &Options::default()).unwrap();
        let meta = tmp.0.join("meta");
        let _erofs = mount_or_skip!(&["-t", "erofs", "-o", "ro,loop", image.to_str().unwrap()], &meta);
        let target = tmp.0.join("target");
        let objects = phys.join("ostree/repo/objects");
        let mount_opts = overlay_opts(&meta, &objects, ",verity=require");
        let _overlay = mount_or_skip!(&["-t", "overlay", "overlay", "-o", &mount_opts], &target);
        assert_eq!(read_errno(&target.join("usr/lib/os-release")), Some(libc_eio()));
        assert_eq!(fs::read_link(target.join("bin")).unwrap(), Path::new("usr/bin"));
        skip_no_kernel_verity(": only checked that verity=require refuses objects without it");
        return;
    }
    let digest = write_image(&phys, &deployment, &opts).unwrap();
    let image = dep.join(".ostree.cfs");
    let f = fs::File::open(&image).unwrap();
    assert_eq!(
        verity::measure(f.as_fd()).unwrap(),
        digest,
        "the image has fs-verity, with the digest printed"
    );
    drop(f);
    let fsck = Command::new("fsck.erofs").arg(&image).output().unwrap();
    assert!(fsck.status.success(), "fsck.erofs: {}", String::from_utf8_lossy(&fsck.stderr));
    let os_release = Path::new("usr/lib/os-release");
    let init = Path::new("usr/sbin/init");
    let fine = [Path::new("usr/share/testos/version"), Path::new("usr/etc/hostname")];
    for p in [os_release, init] {
        let f = fs::File::open(object_of(&phys, &dep.join(p)).unwrap()).unwrap();
        assert!(verity::measure(f.as_fd()).is_ok(), "{}: object has fs-verity", p.display());
    }

    let meta = tmp.0.join("meta");
    let _erofs = mount_or_skip!(&["-t", "erofs", "-o", "ro,loop", image.to_str().unwrap()], &meta);
    let target = tmp.0.join("target");
    let objects = phys.join("ostree/repo/objects");
    let mount_opts = overlay_opts(&meta, &objects, ",verity=require");
    {
        let _overlay = mount_or_skip!(&["-t", "overlay", "overlay", "-o", &mount_opts], &target);
        assert_eq!(tree(&target), tree(&dep));
        check_etc(&target, &dep);
    }

    // Tampered objects, one without fs-verity, one with it but another
    // digest: a fresh overlay (the old one remembers the objects it found)
    // refuses to read them, and only them.
    tamper(&object_of(&phys, &dep.join(os_release)).unwrap(), false);
    tamper(&object_of(&phys, &dep.join(init)).unwrap(), true);
    let _overlay = mount_or_skip!(&["-t", "overlay", "overlay", "-o", &mount_opts], &target);
    assert_eq!(read_errno(&target.join(os_release)), Some(libc_eio()), "object without fs-verity");
    assert_eq!(read_errno(&target.join(init)), Some(libc_eio()), "object with another digest");
    for p in fine {
        assert_eq!(fs::read(target.join(p)).unwrap(), fs::read(dep.join(p)).unwrap(), "{}", p.display());
    }
}

fn libc_eio() -> i32 {
    rustix::io::Errno::IO.raw_os_error()
}

/// A made-up physical root in `dir` with what make-sysroot.sh's has not:
/// empty and large files, a directory of several blocks, names sorting
/// before `.`, a symlink too long to sit inline, a fifo, set-id modes and
/// other owners, and the entries the image leaves out.
fn odd_root(dir: &Path) -> (PathBuf, PathBuf) {
    let phys = dir.join("phys");
    let deployment = PathBuf::from("ostree/deploy/os/deploy/0123.0");
    let dep = phys.join(&deployment);
    let objects = phys.join("ostree/repo/objects");
    for d in ["usr/many", "usr/a/b/c/d", "etc/sub", ".usr-ovl-work/x", "var"] {
        fs::create_dir_all(dep.join(d)).unwrap();
    }
    let files: [(&str, usize, u32, (u32, u32)); 6] = [
        ("usr/empty", 0, 0o644, (0, 0)),
        ("usr/one", 1, 0o600, (1234, 5678)),
        ("usr/block", 4096, 0o4755, (0, 0)),
        ("usr/a/b/c/d/big", (1 << 20) + 3, 0o2711, (0, 42)),
        ("-dash", 10, 0o644, (0, 0)),
        (".hidden", 20, 0o1777, (0, 0)),
    ];
    for (i, (path, size, mode, (uid, gid))) in files.into_iter().enumerate() {
        let object = objects.join(format!("{i:02x}/{:062x}.file", i + 1));
        fs::create_dir_all(object.parent().unwrap()).unwrap();
        fs::write(&object, pattern(size, i as u32 + 7)).unwrap();
        std::os::unix::fs::chown(&object, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&object, fs::Permissions::from_mode(mode)).unwrap();
        fs::hard_link(&object, dep.join(path)).unwrap();
    }
    for i in 0..300 {
        fs::hard_link(dep.join("usr/empty"), dep.join(format!("usr/many/entry-with-a-longish-name-{i:03}")))
            .unwrap();
    }
    fs::hard_link(dep.join("usr/one"), dep.join("etc/sub/one")).unwrap();
    std::os::unix::fs::symlink("x/".repeat(2000), dep.join("usr/longlink")).unwrap();
    std::os::unix::fs::symlink("../usr/one", dep.join("!bang")).unwrap();
    let fifo = Command::new("mkfifo").arg("-m").arg("0640").arg(dep.join("usr/fifo")).status().unwrap();
    assert!(fifo.success());
    fs::write(dep.join(".ostree.cfs"), "an old image").unwrap();
    (phys, deployment)
}

#[test]
fn odd_tree_mounts_as_it_is() {
    if let Some(why) = cannot_run() {
        skip(why);
        return;
    }
    let tmp = TmpDir::new("/dev/shm", "odd");
    let (phys, deployment) = odd_root(&tmp.0);
    let dep = phys.join(&deployment);
    write_image(&phys, &deployment, &Options::default()).unwrap();
    let image = dep.join(".ostree.cfs");
    let fsck = Command::new("fsck.erofs").arg(&image).output().unwrap();
    assert!(fsck.status.success(), "fsck.erofs: {}", String::from_utf8_lossy(&fsck.stderr));
    let meta = tmp.0.join("meta");
    let _erofs = mount_or_skip!(&["-t", "erofs", "-o", "ro,loop", image.to_str().unwrap()], &meta);
    let target = tmp.0.join("target");
    let opts = overlay_opts(&meta, &phys.join("ostree/repo/objects"), "");
    let _overlay = mount_or_skip!(&["-t", "overlay", "overlay", "-o", &opts], &target);
    let mut want = tree(&dep);
    want.retain(|path, _| !path.starts_with(".usr-ovl-work"));
    let got = tree(&target);
    assert_eq!(got, want);
    check_etc(&target, &dep);
    // Looked up by name too, not only listed (the kernel's binary search
    // over the directory's blocks).
    for i in [0, 150, 299] {
        assert!(target.join(format!("usr/many/entry-with-a-longish-name-{i:03}")).exists());
    }
    assert!(!target.join("usr/many/entry-with-a-longish-name-300").exists());
}

#[test]
fn a_regular_file_that_is_no_object_is_an_error_naming_it() {
    let tmp = TmpDir::new("/dev/shm", "stray");
    let (phys, deployment) = odd_root(&tmp.0);
    let stray = phys.join(&deployment).join("usr/a/stray");
    fs::write(&stray, "not an object").unwrap();
    let err = write_image(&phys, &deployment, &Options::default()).unwrap_err();
    assert!(matches!(&err, rootstock_mkcfs::Error::NotAnObject { path, .. } if *path == stray), "{err:?}");
    assert!(err.to_string().contains("usr/a/stray"), "{err}");
}
