//! OSTree's on-disk layout, read exactly as `ostree admin deploy` writes it.
//!
//! ```text
//! /ostree/deploy/$stateroot/deploy/$csum.$serial/   a deployment
//! /ostree/deploy/$stateroot/var/                    the stateroot's /var
//! /ostree/boot.N -> boot.N.M
//! /ostree/boot.N.M/$stateroot/$bootcsum/$bootserial -> ../../../deploy/$stateroot/deploy/$csum.$serial
//! /boot/loader -> loader.N ; /boot/loader.N/entries/ostree-*.conf
//! ```

use std::cmp::Ordering;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cmdline;
use crate::confine;
use crate::errno::Errno;
use crate::resolve::{self, ResolveError, resolve_in_root, show};

/// One deployment, as the BLS entry and the deploy directory describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// Position in ostree's order: 0 = default, 1 = rollback.
    pub index: usize,
    pub stateroot: String,
    pub csum: String,
    pub serial: u32,
    pub bootcsum: String,
    pub bootserial: u32,
    /// The `ostree=` argument of its BLS entry.
    pub ostree_arg: String,
    /// File name of its BLS entry.
    pub entry: String,
    pub version: String,
    pub options: String,
    pub linux: Option<String>,
    pub initrd: Option<String>,
}

impl Deployment {
    /// `$csum.$serial`, the name of the deployment directory.
    pub fn id(&self) -> String {
        format!("{}.{}", self.csum, self.serial)
    }

    /// `$stateroot/$csum.$serial`: how messages and the state file name it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.stateroot, self.id())
    }

    /// The deployment directory, relative to the physical root.
    pub fn dir(&self) -> PathBuf {
        deploy_dir(&self.stateroot, &self.id())
    }

    /// The stateroot's shared var, relative to the physical root.
    pub fn var_dir(&self) -> PathBuf {
        PathBuf::from(format!("ostree/deploy/{}/var", self.stateroot))
    }
}

pub fn deploy_dir(stateroot: &str, id: &str) -> PathBuf {
    PathBuf::from(format!("ostree/deploy/{stateroot}/deploy/{id}"))
}

/// Why the layout cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// `ostree=` could not be resolved inside the physical root.
    #[error("ostree={arg}: {error}")]
    Resolve {
        arg: String,
        #[source]
        error: ResolveError,
    },
    /// `ostree=` resolved, but not to a deployment directory.
    #[error(
        "ostree={arg} resolves to /{resolved}, which is not a deployment \
         (expected /ostree/deploy/STATEROOT/deploy/CHECKSUM.SERIAL)"
    )]
    NotADeployment { arg: String, resolved: String },
    /// `ostree=` is not of the form `/ostree/boot.N/$stateroot/$bootcsum/$bootserial`.
    #[error("ostree={arg} is not of the form /ostree/boot.N/STATEROOT/BOOTCSUM/BOOTSERIAL")]
    BadOstreeArg { arg: String },
    /// `/boot/loader` or its entries cannot be read.
    #[error("cannot read the boot loader entries {}: {errno}", path.display())]
    ReadEntries { path: PathBuf, errno: Errno },
    /// `/ostree/deploy` cannot be read.
    #[error("cannot read the deployments in {}: {errno} (is this an OSTree physical root?)", path.display())]
    ReadDeployments { path: PathBuf, errno: Errno },
    /// A stateroot or deployment name from disk that rootstock will not use.
    #[error("{kind} name {:?} is refused: {problem}", crate::text::one_line(name))]
    BadName { kind: &'static str, name: String, problem: &'static str },
    /// A BLS entry lacks what ostree always writes.
    #[error("boot loader entry {entry}: {problem}")]
    BadEntry { entry: String, problem: String },
}

/// The parts of an `ostree=` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OstreeArg {
    pub bootversion: String,
    pub stateroot: String,
    pub bootcsum: String,
    pub bootserial: u32,
}

/// Split `/ostree/boot.N/$stateroot/$bootcsum/$bootserial`.
pub fn parse_ostree_arg(arg: &str) -> Result<OstreeArg, LayoutError> {
    let bad = || LayoutError::BadOstreeArg { arg: arg.to_string() };
    let parts: Vec<&str> = arg.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["", "ostree", boot, stateroot, bootcsum, bootserial]
            if boot.starts_with("boot.") && !stateroot.is_empty() && !bootcsum.is_empty() =>
        {
            Ok(OstreeArg {
                bootversion: boot.to_string(),
                stateroot: stateroot.to_string(),
                bootcsum: bootcsum.to_string(),
                bootserial: bootserial.parse().map_err(|_| bad())?,
            })
        }
        _ => Err(bad()),
    }
}

/// Refuse a name from disk (a stateroot, a deployment) that holds a control
/// character or a `/`: it would forge lines in the state file, the log and
/// `status`, or name a path instead of a directory entry.
pub fn check_name(kind: &'static str, name: &str) -> Result<(), LayoutError> {
    let bad = |problem| Err(LayoutError::BadName { kind, name: name.to_string(), problem });
    if name.is_empty() || name == "." || name == ".." {
        return bad("empty, `.` or `..`");
    }
    if name.chars().any(char::is_control) {
        return bad("it holds a control character (a newline, an escape)");
    }
    if name.contains('/') {
        return bad("it holds a `/`");
    }
    Ok(())
}

/// Resolve `ostree=` inside the physical root to `(stateroot, csum, serial)`.
pub fn resolve_ostree_arg(physical_root: &Path, arg: &str) -> Result<(String, String, u32), LayoutError> {
    let resolved = resolve_in_root(physical_root, Path::new(arg))
        .map_err(|error| LayoutError::Resolve { arg: arg.to_string(), error })?;
    let not_deployment =
        || LayoutError::NotADeployment { arg: arg.to_string(), resolved: show(resolved.as_os_str()) };
    let parts: Vec<&str> = match resolved.to_str() {
        Some(s) => s.split('/').collect(),
        None => return Err(not_deployment()),
    };
    match parts.as_slice() {
        ["ostree", "deploy", stateroot, "deploy", id] if cmdline::is_deployment_id(id) => {
            check_name("stateroot", stateroot)?;
            if !physical_root.join(&resolved).is_dir() {
                return Err(not_deployment());
            }
            let (csum, serial) = id.split_once('.').ok_or_else(not_deployment)?;
            Ok((stateroot.to_string(), csum.to_string(), serial.parse().map_err(|_| not_deployment())?))
        }
        _ => Err(not_deployment()),
    }
}

/// A parsed BLS entry (only the keys rootstock uses).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlsEntry {
    pub title: Option<String>,
    pub version: Option<String>,
    pub options: Option<String>,
    pub linux: Option<String>,
    pub initrd: Option<String>,
}

/// Parse a BLS entry: `key value` lines, `#` comments.
pub fn parse_bls(text: &str) -> BlsEntry {
    let mut e = BlsEntry::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim().to_string()),
            None => (line, String::new()),
        };
        match key {
            "title" => e.title = Some(value),
            "version" => e.version = Some(value),
            "options" => e.options = Some(value),
            "linux" => e.linux = Some(value),
            "initrd" => e.initrd = Some(value),
            _ => {}
        }
    }
    e
}

/// Compare versions the way `strverscmp` does for ostree's entries: runs of
/// digits compare as numbers.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then(da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

/// All deployments, in ostree's order, plus the entries that were skipped and why.
#[derive(Debug, Clone, Default)]
pub struct Deployments {
    pub list: Vec<Deployment>,
    pub problems: Vec<LayoutError>,
}

/// Read the BLS entries of the current `/boot/loader` and resolve each to a
/// deployment, sorted by `version` descending (index 0 = default).
pub fn read_deployments(physical_root: &Path) -> Result<Deployments, LayoutError> {
    let entries_rel = resolve_in_root(physical_root, Path::new("boot/loader/entries")).map_err(|e| {
        let errno = match e {
            ResolveError::Missing { errno, .. } => errno,
            ResolveError::NotADirectory { .. } => Errno::NOTDIR,
            ResolveError::Loop { .. } => Errno::LOOP,
            ResolveError::Escapes { .. } => Errno::XDEV,
        };
        LayoutError::ReadEntries { path: physical_root.join("boot/loader/entries"), errno }
    })?;
    let dir = physical_root.join(&entries_rel);
    let read_err = |errno| LayoutError::ReadEntries { path: dir.clone(), errno };
    let mut names: Vec<OsString> = std::fs::read_dir(&dir)
        .map_err(|e| read_err(Errno::from_io(&e)))?
        .filter_map(|d| d.ok().map(|d| d.file_name()))
        .filter(|n| n.as_encoded_bytes().ends_with(b".conf"))
        .collect();
    names.sort();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        let entry = show(&name);
        let bad = |problem: String| LayoutError::BadEntry { entry: entry.clone(), problem };
        // Confined, non-blocking, regular, capped: a FIFO, a link to
        // /dev/zero or to a file outside the physical root is a problem
        // with this entry, never a hang, an exhausted memory or a decision.
        let read = confine::open_root(physical_root)
            .and_then(|root| confine::read_in_root(&root, &entries_rel.join(&name), confine::SMALL_FILE_CAP));
        let text = match read {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    problems.push(bad("not valid UTF-8".into()));
                    continue;
                }
            },
            Err(e) => {
                problems.push(bad(format!("cannot read: {e}")));
                continue;
            }
        };
        match entry_to_deployment(physical_root, &entry, &text) {
            Ok(d) => found.push(d),
            Err(e) => problems.push(e),
        }
    }
    found.sort_by(|a, b| compare_versions(&b.version, &a.version).then(a.entry.cmp(&b.entry)));
    for (i, d) in found.iter_mut().enumerate() {
        d.index = i;
    }
    Ok(Deployments { list: found, problems })
}

fn entry_to_deployment(physical_root: &Path, entry: &str, text: &str) -> Result<Deployment, LayoutError> {
    let bad =
        |problem: &str| LayoutError::BadEntry { entry: entry.to_string(), problem: problem.to_string() };
    let bls = parse_bls(text);
    let version = bls.version.clone().ok_or_else(|| bad("no `version` line"))?;
    let options = bls.options.clone().ok_or_else(|| bad("no `options` line"))?;
    let args = cmdline::KernelArgs::parse(&options)
        .map_err(|e| LayoutError::BadEntry { entry: entry.to_string(), problem: format!("options: {e}") })?;
    let ostree_arg = args.ostree.ok_or_else(|| bad("no ostree= in `options`"))?;
    let parsed = parse_ostree_arg(&ostree_arg)?;
    let (stateroot, csum, serial) = resolve_ostree_arg(physical_root, &ostree_arg)?;
    Ok(Deployment {
        index: 0,
        stateroot,
        csum,
        serial,
        bootcsum: parsed.bootcsum,
        bootserial: parsed.bootserial,
        ostree_arg,
        entry: entry.to_string(),
        version,
        options,
        linux: bls.linux,
        initrd: bls.initrd,
    })
}

/// Every deployment directory on disk, `(stateroot, $csum.$serial)`,
/// whether or not a boot loader entry names it.
pub fn deployment_dirs(physical_root: &Path) -> Result<Vec<(String, String)>, LayoutError> {
    let base = physical_root.join("ostree/deploy");
    let read_err = |path: &Path, e: std::io::Error| LayoutError::ReadDeployments {
        path: path.to_path_buf(),
        errno: Errno::from_io(&e),
    };
    let mut out = Vec::new();
    for sr in std::fs::read_dir(&base).map_err(|e| read_err(&base, e))?.flatten() {
        let Ok(stateroot) = sr.file_name().into_string() else { continue };
        if let Err(e) = check_name("stateroot", &stateroot) {
            log::warn!("{e}: its deployments are ignored");
            continue;
        }
        let deploy = sr.path().join("deploy");
        let Ok(entries) = std::fs::read_dir(&deploy) else { continue };
        for e in entries.flatten() {
            if let Ok(id) = e.file_name().into_string()
                && cmdline::is_deployment_id(&id)
                && e.path().is_dir()
            {
                out.push((stateroot.clone(), id));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// What is wrong with a deployment that makes it unbootable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unbootable {
    #[error("deployment /{} has no {dir}/ directory: {hint}", deployment.display())]
    MissingDir { deployment: PathBuf, dir: &'static str, hint: &'static str },
    #[error(
        "the stateroot's /var, /{}, is missing: run `ostree admin os-init` for this stateroot",
        path.display()
    )]
    MissingStaterootVar { path: PathBuf },
    /// A directory rootstock mounts, or one on the way to it, is a symlink.
    #[error(
        "/{} is a symlink, or has one on its way (refused: a mount through it could land \
         outside the physical root)",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error(
        "deployment /{} has no executable init (tried {}): check the usr-merge symlinks \
         (sbin -> usr/sbin) and that the OS tree contains an init",
        deployment.display(),
        tried.join(", ")
    )]
    NoInit { deployment: PathBuf, tried: Vec<String> },
    /// `.usr-ovl-work` says the deployment is unlocked for hotfixes, but the
    /// overlay's directories are not both plain directories.
    #[error(
        "deployment /{} is unlocked for hotfixes ({HOTFIX_WORK} exists) but its {name} {problem}: \
         redo `ostree admin unlock --hotfix`, or remove {HOTFIX_WORK} to boot it locked",
        deployment.display()
    )]
    BadHotfix { deployment: PathBuf, name: &'static str, problem: &'static str },
    /// What the configuration promises (composefs, fs-verity, a signature,
    /// a transient root) this deployment cannot give.
    #[error("deployment /{}: {refused}", deployment.display())]
    Integrity {
        deployment: PathBuf,
        #[source]
        refused: crate::composefs::Refused,
    },
}

/// The overlay's upper directory that `ostree admin unlock --hotfix` makes in
/// the deployment directory: the hotfixes, kept across reboots.
pub const HOTFIX_UPPER: &str = ".usr-ovl-upper";
/// The overlay's work directory; its presence marks the deployment unlocked
/// (what ostree-prepare-root tests).
pub const HOTFIX_WORK: &str = ".usr-ovl-work";

/// Is the deployment unlocked with `ostree admin unlock --hotfix`, so that
/// its /usr is an overlay (lower `usr`, upper [`HOTFIX_UPPER`], work
/// [`HOTFIX_WORK`])? As ostree-prepare-root, the work directory decides;
/// both must then be directories of the deployment itself: a symlink, which
/// could point anywhere, is refused, and so is anything else.
pub fn hotfix(physical_root: &Path, d: &Deployment) -> Result<bool, Unbootable> {
    let dir = d.dir();
    if std::fs::symlink_metadata(physical_root.join(&dir).join(HOTFIX_WORK)).is_err() {
        return Ok(false);
    }
    for name in [HOTFIX_UPPER, HOTFIX_WORK] {
        let problem = match confine::real_dir(physical_root, &dir.join(name)) {
            Ok(()) => continue,
            Err(Errno::LOOP) => "is a symlink (refused)",
            Err(Errno::NOENT) => "is missing",
            Err(Errno::NOTDIR) => "is not a directory",
            Err(_) => "cannot be read",
        };
        return Err(Unbootable::BadHotfix { deployment: dir, name, problem });
    }
    Ok(true)
}

/// The inits tried in order when `init=` is not given.
pub const DEFAULT_INITS: [&str; 2] = ["/sbin/init", "/usr/lib/systemd/systemd"];

/// `init=` as the init to run in the deployment. When a commit carries no
/// initramfs, `ostree admin deploy` names ostree's own prepare-root as init
/// (`init=/ostree/boot.N/…/usr/lib/ostree/ostree-prepare-root`): rootstock
/// does that program's job, so the deployment's own init runs instead (the
/// default inits), and the console says so.
pub fn deployment_init(init: Option<&str>) -> Option<&str> {
    match init {
        Some(i) if is_ostree_prepare_root(i) => {
            log::info!(
                "init={} is ostree's prepare-root: rootstock does its job, the deployment's own init runs",
                crate::text::one_line(i)
            );
            None
        }
        other => other,
    }
}

/// Is `path` ostree's prepare-root (`…/usr/lib/ostree/ostree-prepare-root`)?
pub fn is_ostree_prepare_root(path: &str) -> bool {
    path == "/usr/lib/ostree/ostree-prepare-root" || path.ends_with("/usr/lib/ostree/ostree-prepare-root")
}

/// Check that a deployment can be laid out and booted; returns the init that
/// will run (resolved inside the deployment).
pub fn check_deployment(
    physical_root: &Path,
    d: &Deployment,
    init: Option<&str>,
) -> Result<String, Unbootable> {
    let dir = d.dir();
    let root = physical_root.join(&dir);
    for (name, hint) in [
        ("usr", "the OS tree is not a usr-merged OSTree commit"),
        ("etc", "ostree creates it from usr/etc at deploy time: redeploy"),
        (
            "sysroot",
            "the physical root is mounted there: add an empty /sysroot to the OS tree before `ostree commit`",
        ),
        (
            "var",
            "the stateroot's /var is mounted there: add an empty /var to the OS tree before `ostree commit`",
        ),
        ("dev", "/dev is moved there at switch root: add an empty /dev to the OS tree"),
        ("proc", "/proc is moved there at switch root: add an empty /proc to the OS tree"),
        ("sys", "/sys is moved there at switch root: add an empty /sys to the OS tree"),
        ("run", "/run is moved there at switch root: add an empty /run to the OS tree"),
    ] {
        // lstat, never stat: a symlink here would redirect a mount outside
        // the physical root.
        match confine::real_dir(physical_root, &dir.join(name)) {
            Ok(()) => {}
            Err(Errno::LOOP) => return Err(Unbootable::Symlink { path: dir.join(name) }),
            Err(_) => return Err(Unbootable::MissingDir { deployment: dir, dir: name, hint }),
        }
    }
    match confine::real_dir(physical_root, &d.var_dir()) {
        Ok(()) => {}
        Err(Errno::LOOP) => return Err(Unbootable::Symlink { path: d.var_dir() }),
        Err(_) => return Err(Unbootable::MissingStaterootVar { path: d.var_dir() }),
    }
    let tried: Vec<&str> = match init {
        Some(i) => vec![i],
        None => DEFAULT_INITS.to_vec(),
    };
    for candidate in &tried {
        if let Ok(rel) = resolve_in_root(&root, Path::new(candidate))
            && let Ok(meta) = std::fs::metadata(root.join(&rel))
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate.to_string());
        }
    }
    Err(Unbootable::NoInit { deployment: dir, tried: tried.iter().map(|s| s.to_string()).collect() })
}

/// Does the deployment carry modules for kernel `kver` (its
/// `usr/lib/modules/KVER`, a directory reached inside the deployment)? If
/// not, it was built for another kernel.
pub fn has_modules_for(physical_root: &Path, d: &Deployment, kver: &str) -> bool {
    let root = physical_root.join(d.dir());
    let modules = format!("usr/lib/modules/{kver}");
    resolve_in_root(&root, Path::new(&modules)).is_ok_and(|p| root.join(p).is_dir())
}

/// Is any deployment on the physical root unlocked for hotfixes (has
/// [`HOTFIX_WORK`])? PID 1 loads overlayfs before laying one out: the
/// kernel cannot load it on demand without a modprobe.
pub fn any_hotfix(physical_root: &Path) -> bool {
    deployment_dirs(physical_root).unwrap_or_default().iter().any(|(stateroot, id)| {
        std::fs::symlink_metadata(physical_root.join(deploy_dir(stateroot, id)).join(HOTFIX_WORK)).is_ok()
    })
}

/// Is `sysroot.readonly` set in the physical root's `ostree/repo/config`
/// (`ostree config set sysroot.readonly true`)? Both ostree-prepare-root
/// 2022.7 and 2025.2 honour it. The file is read confined to the physical
/// root, regular and capped ([`confine::read_in_root`]); anything else reads
/// as not set.
pub fn repo_sysroot_readonly(physical_root: &Path) -> bool {
    confine::open_root(physical_root)
        .and_then(|root| {
            confine::read_in_root(&root, Path::new("ostree/repo/config"), confine::SMALL_FILE_CAP)
        })
        .is_ok_and(|bytes| parse_repo_sysroot_readonly(&String::from_utf8_lossy(&bytes)))
}

/// `readonly` in the `[sysroot]` group of a GKeyFile, as
/// `g_key_file_get_boolean` reads it (`true` or `1`).
pub fn parse_repo_sysroot_readonly(text: &str) -> bool {
    let mut group = "";
    let mut readonly = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(g) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            group = g;
            continue;
        }
        if group == "sysroot"
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == "readonly"
        {
            readonly = matches!(v.trim(), "true" | "1");
        }
    }
    readonly
}

/// Keep `resolve` reachable for callers that only import `layout`.
pub use resolve::resolve_in_root as resolve_path;

/// ostree's rule for /boot: when the physical root's `boot/loader` is a
/// symlink, /boot is on the physical root's filesystem (not a separate
/// partition, whose mount point would be empty here) and the deployment's
/// `boot/` directory (not a symlink) gets a bind of it.
pub fn boot_on_physical_root(sysroot: &Path, d: &Deployment) -> bool {
    let is = |p: PathBuf, want: fn(&std::fs::Metadata) -> bool| {
        std::fs::symlink_metadata(p).is_ok_and(|m| want(&m))
    };
    // The physical root's boot must be a real directory: a symlink there
    // would redirect the bind outside the physical root.
    if let Err(e) = confine::real_dir(sysroot, Path::new("boot")) {
        if e != Errno::NOENT {
            log::warn!(
                "{}/boot: {e}: not bound into the deployment (must be a real directory)",
                sysroot.display()
            );
        }
        return false;
    }
    is(sysroot.join("boot/loader"), |m| m.file_type().is_symlink())
        && confine::real_dir(sysroot, &d.dir().join("boot")).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::os::unix::fs::symlink;

    pub(crate) use crate::testutil::{C1, C2};

    /// A sysroot laid out as `ostree admin deploy` writes it, two deployments.
    pub(crate) fn sysroot() -> TempDir {
        let t = TempDir::new();
        crate::testutil::fake_physical_root(t.path(), "r", None);
        t
    }

    #[test]
    fn ostree_arg_forms() {
        let ok = parse_ostree_arg(&format!("/ostree/boot.1/os/{C1}/0")).unwrap();
        assert_eq!((ok.bootversion.as_str(), ok.stateroot.as_str(), ok.bootserial), ("boot.1", "os", 0));
        for bad in [
            "",
            "/",
            "/ostree/boot.1/os",
            "/ostree/deploy/os/x/0",
            "ostree/boot.1/os/c/0",
            "/ostree/boot.1/os/c/x",
        ] {
            assert!(parse_ostree_arg(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn versions_sort_like_strverscmp() {
        use Ordering::*;
        for (a, b, want) in [
            ("2", "10", Less),
            ("10", "9", Greater),
            ("1", "1", Equal),
            ("a2", "a10", Less),
            ("", "1", Less),
            ("01", "1", Equal),
        ] {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn bls_entries_parse() {
        let e = parse_bls(
            "# comment\ntitle  My OS (ostree:0)\nversion 3\noptions a=1  b\nlinux /v\n\nunknown x\n",
        );
        assert_eq!(e.title.as_deref(), Some("My OS (ostree:0)"));
        assert_eq!(e.version.as_deref(), Some("3"));
        assert_eq!(e.options.as_deref(), Some("a=1  b"));
        assert_eq!(e.initrd, None);
    }

    #[test]
    fn deployments_in_ostree_order() {
        let t = sysroot();
        let ds = read_deployments(t.path()).unwrap();
        assert!(ds.problems.is_empty(), "{:?}", ds.problems);
        let ids: Vec<_> = ds.list.iter().map(|d| (d.index, d.csum.clone(), d.version.clone())).collect();
        assert_eq!(ids, vec![(0, C2.to_string(), "2".into()), (1, C1.to_string(), "1".into())]);
        assert_eq!(ds.list[0].dir(), PathBuf::from(format!("ostree/deploy/os/deploy/{C2}.0")));
        assert_eq!(ds.list[0].linux.as_deref(), Some(&format!("/ostree/os-{C2}/vmlinuz")[..]));
        assert_eq!(check_deployment(t.path(), &ds.list[0], None).unwrap(), "/sbin/init");
        let dirs = deployment_dirs(t.path()).unwrap();
        assert_eq!(dirs, vec![("os".to_string(), format!("{C1}.0")), ("os".to_string(), format!("{C2}.0"))]);
    }

    #[test]
    fn broken_entries_are_reported_not_fatal() {
        let t = sysroot();
        let e = t.path().join("boot/loader.1/entries");
        std::fs::write(e.join("ostree-3-os.conf"), "title x\noptions ostree=/ostree/boot.1/os/x/0\n")
            .unwrap();
        std::fs::write(e.join("ostree-4-os.conf"), "title x\nversion 4\n").unwrap();
        std::fs::write(e.join("ostree-5-os.conf"), "version 5\noptions root=x\n").unwrap();
        std::fs::write(e.join("ostree-6-os.conf"), "version 6\noptions ostree=\"/x\n").unwrap();
        std::fs::write(e.join("ostree-7-os.conf"), "version 7\noptions ostree=/ostree/boot.1/os/nothere/0\n")
            .unwrap();
        std::fs::write(e.join("ostree-8-os.conf"), [b'v', 0xff]).unwrap();
        let ds = read_deployments(t.path()).unwrap();
        assert_eq!(ds.list.len(), 2);
        let msgs: Vec<String> = ds.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 6, "{msgs:?}");
        assert!(msgs[0].contains("ostree-3-os.conf: no `version` line"), "{msgs:?}");
        assert!(msgs[1].contains("ostree-4-os.conf: no `options` line"), "{msgs:?}");
        assert!(msgs[2].contains("no ostree= in `options`"), "{msgs:?}");
        assert!(msgs[3].contains("unbalanced double quote"), "{msgs:?}");
        assert!(msgs[4].contains("ENOENT"), "{msgs:?}");
        assert!(msgs[5].contains("not valid UTF-8"), "{msgs:?}");
    }

    #[test]
    fn missing_loader_is_a_clear_error() {
        let t = TempDir::new();
        let err = read_deployments(t.path()).unwrap_err().to_string();
        assert!(err.contains("cannot read the boot loader entries") && err.contains("ENOENT"), "{err}");
    }

    #[test]
    fn hostile_ostree_args() {
        let t = sysroot();
        let p = t.path();
        symlink("../../../../../../..", p.join("ostree/boot.1.0/os/escape")).unwrap();
        symlink("/etc", p.join("ostree/boot.1.0/os/hostetc")).unwrap();
        symlink("me", p.join("ostree/boot.1.0/os/me")).unwrap();
        std::fs::create_dir_all(p.join("ostree/deploy/os/deploy/notadeployment")).unwrap();
        symlink("../../deploy/os/deploy/notadeployment", p.join("ostree/boot.1.0/os/odd")).unwrap();
        let cases = [
            ("/ostree/boot.1/os/escape", "climbs out of the physical root"),
            ("/ostree/boot.1/os/hostetc", "ENOENT"),
            ("/ostree/boot.1/os/me", "symlink loop"),
            ("/ostree/boot.1/os/odd", "not a deployment"),
            ("/ostree/deploy/os/var", "not a deployment"),
            ("/ostree/boot.0/os/x/0", "ENOENT"),
        ];
        for (arg, want) in cases {
            let err = resolve_ostree_arg(p, arg).unwrap_err().to_string();
            assert!(err.contains(want), "{arg}: {err}");
        }
        let (s, c, n) = resolve_ostree_arg(p, &format!("/ostree/boot.1/os/{C1}/0")).unwrap();
        assert_eq!((s.as_str(), c.as_str(), n), ("os", C1, 0));
    }

    #[test]
    fn unbootable_deployments_say_what_is_missing() {
        let t = sysroot();
        let ds = read_deployments(t.path()).unwrap();
        let d0 = t.path().join(ds.list[0].dir());
        std::fs::remove_dir(d0.join("sysroot")).unwrap();
        let err = check_deployment(t.path(), &ds.list[0], None).unwrap_err().to_string();
        assert!(err.contains("has no sysroot/ directory") && err.contains("before `ostree commit`"), "{err}");
        std::fs::create_dir(d0.join("sysroot")).unwrap();
        std::fs::remove_dir(d0.join("proc")).unwrap();
        let err = check_deployment(t.path(), &ds.list[0], None).unwrap_err().to_string();
        assert!(err.contains("has no proc/ directory: /proc is moved there at switch root"), "{err}");
        std::fs::create_dir(d0.join("proc")).unwrap();
        std::fs::remove_file(d0.join("sbin")).unwrap();
        let err = check_deployment(t.path(), &ds.list[0], None).unwrap_err().to_string();
        assert!(err.contains("no executable init (tried /sbin/init, /usr/lib/systemd/systemd)"), "{err}");
        assert_eq!(
            check_deployment(t.path(), &ds.list[0], Some("/usr/sbin/init")).unwrap(),
            "/usr/sbin/init"
        );
        std::fs::remove_dir(t.path().join("ostree/deploy/os/var")).unwrap();
        let err = check_deployment(t.path(), &ds.list[1], None).unwrap_err().to_string();
        assert!(err.contains("ostree admin os-init"), "{err}");
    }

    #[test]
    fn hotfix_needs_both_overlay_directories() {
        let t = sysroot();
        let ds = read_deployments(t.path()).unwrap();
        let d0 = t.path().join(ds.list[0].dir());
        assert_eq!(hotfix(t.path(), &ds.list[0]), Ok(false), "locked: no {HOTFIX_WORK}");
        assert!(!any_hotfix(t.path()));
        // The upper directory alone does not unlock (ostree tests the work directory).
        std::fs::create_dir(d0.join(HOTFIX_UPPER)).unwrap();
        assert_eq!(hotfix(t.path(), &ds.list[0]), Ok(false));
        std::fs::create_dir(d0.join(HOTFIX_WORK)).unwrap();
        assert_eq!(hotfix(t.path(), &ds.list[0]), Ok(true));
        assert!(any_hotfix(t.path()));
        assert_eq!(hotfix(t.path(), &ds.list[1]), Ok(false), "the other deployment stays locked");

        let err = |t: &TempDir| hotfix(t.path(), &ds.list[0]).unwrap_err().to_string();
        std::fs::remove_dir(d0.join(HOTFIX_UPPER)).unwrap();
        let e = err(&t);
        assert!(
            e.contains("is unlocked for hotfixes (.usr-ovl-work exists) but its .usr-ovl-upper is missing"),
            "{e}"
        );
        assert!(e.contains("remove .usr-ovl-work to boot it locked"), "{e}");
        std::fs::write(d0.join(HOTFIX_UPPER), "").unwrap();
        assert!(err(&t).contains(".usr-ovl-upper is not a directory"), "{}", err(&t));
        std::fs::remove_file(d0.join(HOTFIX_UPPER)).unwrap();
        symlink("/", d0.join(HOTFIX_UPPER)).unwrap();
        assert!(err(&t).contains(".usr-ovl-upper is a symlink (refused)"), "{}", err(&t));
        std::fs::remove_file(d0.join(HOTFIX_UPPER)).unwrap();
        std::fs::create_dir(d0.join(HOTFIX_UPPER)).unwrap();
        std::fs::remove_dir(d0.join(HOTFIX_WORK)).unwrap();
        symlink("usr", d0.join(HOTFIX_WORK)).unwrap();
        assert!(err(&t).contains(".usr-ovl-work is a symlink (refused)"), "{}", err(&t));
        std::fs::remove_file(d0.join(HOTFIX_WORK)).unwrap();
        std::fs::write(d0.join(HOTFIX_WORK), "").unwrap();
        assert!(err(&t).contains(".usr-ovl-work is not a directory"), "{}", err(&t));
    }

    #[test]
    fn readonly_from_the_repository_config() {
        let yes = |t: &str| parse_repo_sysroot_readonly(t);
        assert!(yes("[core]\nrepo_version=1\nmode=bare\n\n[sysroot]\nreadonly=true\n"));
        assert!(yes("[sysroot]\n readonly = 1 \n"));
        assert!(!yes("[sysroot]\nreadonly=false\n"));
        assert!(!yes("[core]\nreadonly=true\n"), "another group");
        assert!(!yes("[sysroot]\nbootloader=none\n[core]\nreadonly=true\n"));
        assert!(!yes("# [sysroot]\n# readonly=true\n"));
        assert!(!yes("[sysroot]\nreadonly=true\nreadonly=false\n"), "the last one wins");

        let t = sysroot();
        assert!(!repo_sysroot_readonly(t.path()), "no repository config");
        std::fs::create_dir_all(t.path().join("ostree/repo")).unwrap();
        // A symlink to a file outside the root is resolved inside it (where
        // there is no such file).
        let outside = TempDir::new();
        std::fs::write(outside.path().join("config"), "[sysroot]\nreadonly=true\n").unwrap();
        symlink(outside.path().join("config"), t.path().join("ostree/repo/config")).unwrap();
        assert!(!repo_sysroot_readonly(t.path()), "a symlink out of the root");
        std::fs::remove_file(t.path().join("ostree/repo/config")).unwrap();
        std::fs::create_dir(t.path().join("ostree/repo/config")).unwrap();
        assert!(!repo_sysroot_readonly(t.path()), "not a regular file");
        std::fs::remove_dir(t.path().join("ostree/repo/config")).unwrap();
        std::fs::write(t.path().join("ostree/repo/config"), "[sysroot]\nreadonly=true\n").unwrap();
        assert!(repo_sysroot_readonly(t.path()));
    }

    #[test]
    fn hostile_bls_entries_are_problems_not_hangs_or_decisions() {
        let t = sysroot();
        let e = t.path().join("boot/loader.1/entries");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            e.join("ostree-3-os.conf"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        symlink("/dev/zero", e.join("ostree-4-os.conf")).unwrap();
        // A file outside the physical root that would be a valid entry for C1.
        let outside = TempDir::new();
        std::fs::write(
            outside.path().join("evil.conf"),
            format!("version 9\noptions ostree=/ostree/boot.1/os/{C1}/0\n"),
        )
        .unwrap();
        symlink(outside.path().join("evil.conf"), e.join("ostree-5-os.conf")).unwrap();
        std::fs::write(e.join("ostree-6-os.conf"), vec![b'#'; 2 << 20]).unwrap();
        let ds = read_deployments(t.path()).unwrap();
        let ids: Vec<_> = ds.list.iter().map(|d| d.version.clone()).collect();
        assert_eq!(ids, vec!["2", "1"], "the outside entry decides nothing");
        let msgs: Vec<String> = ds.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].contains("ostree-3-os.conf: cannot read") && msgs[0].contains("FIFO"), "{msgs:?}");
        assert!(msgs[1].contains("ostree-4-os.conf: cannot read") && msgs[1].contains("ENOENT"), "{msgs:?}");
        assert!(msgs[2].contains("ostree-5-os.conf: cannot read") && msgs[2].contains("ENOENT"), "{msgs:?}");
        assert!(msgs[3].contains("1048576-byte limit"), "{msgs:?}");
    }

    #[test]
    fn symlinked_mount_sources_are_refused() {
        let outside = TempDir::new();
        for name in ["usr", "etc", "var", "sysroot"] {
            let t = sysroot();
            let ds = read_deployments(t.path()).unwrap();
            let d0 = t.path().join(ds.list[0].dir());
            std::fs::remove_dir_all(d0.join(name)).unwrap();
            std::fs::create_dir_all(outside.path().join(name)).unwrap();
            symlink(outside.path().join(name), d0.join(name)).unwrap();
            let err = check_deployment(t.path(), &ds.list[0], Some("/bin/sh")).unwrap_err();
            assert!(matches!(err, Unbootable::Symlink { .. }), "{name}: {err}");
            assert!(err.to_string().contains(&format!("/{name} is a symlink")), "{err}");
            // A relative link that stays inside is refused as well: mounts never follow links.
            std::fs::remove_file(d0.join(name)).unwrap();
            std::fs::create_dir_all(d0.join("real")).unwrap();
            symlink("real", d0.join(name)).unwrap();
            assert!(matches!(
                check_deployment(t.path(), &ds.list[0], Some("/bin/sh")),
                Err(Unbootable::Symlink { .. })
            ));
        }
        let t = sysroot();
        let ds = read_deployments(t.path()).unwrap();
        let var = t.path().join("ostree/deploy/os/var");
        std::fs::remove_dir(&var).unwrap();
        symlink(outside.path(), &var).unwrap();
        let err = check_deployment(t.path(), &ds.list[0], None).unwrap_err();
        assert_eq!(err, Unbootable::Symlink { path: "ostree/deploy/os/var".into() });
    }

    #[test]
    fn a_stateroot_with_a_newline_is_refused() {
        let t = sysroot();
        let p = t.path();
        let evil = "os\nselected=evil";
        let d = p.join(format!("ostree/deploy/{evil}/deploy/{C1}.0"));
        for sub in ["usr/sbin", "etc", "sysroot", "var", "dev", "proc", "sys", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::create_dir_all(p.join(format!("ostree/boot.1.0/{evil}/{C1}"))).unwrap();
        symlink(
            format!("../../../deploy/{evil}/deploy/{C1}.0"),
            p.join(format!("ostree/boot.1.0/{evil}/{C1}/0")),
        )
        .unwrap();
        let err = resolve_ostree_arg(p, &format!("/ostree/boot.1/{evil}/{C1}/0")).unwrap_err();
        assert!(matches!(err, LayoutError::BadName { kind: "stateroot", .. }), "{err}");
        let msg = err.to_string();
        assert!(!msg.contains('\n') && msg.contains("control character"), "{msg}");
        let dirs = deployment_dirs(p).unwrap();
        assert!(dirs.iter().all(|(s, _)| s == "os"), "{dirs:?}");
        assert!(check_name("deployment", "a/b").is_err());
        assert!(check_name("stateroot", "..").is_err());
        assert!(check_name("stateroot", "fedora-coreos").is_ok());
    }

    #[test]
    fn ostrees_prepare_root_as_init_hands_over_to_the_deployments_own() {
        let ostree = "/ostree/boot.1/os/abc/0/usr/lib/ostree/ostree-prepare-root";
        assert_eq!(deployment_init(Some(ostree)), None);
        assert_eq!(deployment_init(Some("/usr/lib/ostree/ostree-prepare-root")), None);
        assert_eq!(deployment_init(Some("/bin/sh")), Some("/bin/sh"));
        assert_eq!(
            deployment_init(Some("/usr/lib/ostree/ostree-prepare-root.sh")),
            Some("/usr/lib/ostree/ostree-prepare-root.sh")
        );
        assert_eq!(deployment_init(None), None);
    }
}
