//! `rootstock kernel-hook`: rootstock's initramfs made (or removed) when a
//! kernel is installed (or removed), where the distribution expects it.
//! Run by Debian's `/etc/kernel/postinst.d/rootstock` and
//! `/etc/kernel/postrm.d/rootstock`, and by systemd's kernel-install
//! plugin `50-rootstock.install` (`kernel-hooks/` in the source tree).
//!
//! - Where: `/boot/initrd.img-KVER` beside Debian's `/boot/vmlinuz-KVER`;
//!   `/usr/lib/modules/KVER/initramfs.img` beside
//!   `/usr/lib/modules/KVER/vmlinuz` (an OSTree image build: `ostree
//!   commit` carries it); both when both kernels are there; `--output`
//!   (kernel-install's staging area) instead of either.
//! - Who makes it: `--when auto` (the default) leaves the image to
//!   initramfs-tools or dracut when either is installed (they own
//!   `/boot/initrd.img-KVER` and run their own hooks); `always` makes it
//!   anyway (rootstock's hook runs after theirs: its image is the one
//!   left); `never` turns the hook off.

use std::path::{Path, PathBuf};

use argh::FromArgs;

use crate::mkinitramfs::{self, Options};

#[derive(FromArgs, Debug)]
/// Make (add) or remove rootstock's initramfs for an installed kernel, where
/// the distribution expects it: run by the kernel packages' hooks.
#[argh(subcommand, name = "kernel-hook")]
pub struct KernelHookArgs {
    /// add or remove
    #[argh(positional)]
    command: String,
    /// the kernel's release
    #[argh(positional)]
    kver: String,
    /// the kernel image Debian's hooks are given (not needed)
    #[argh(positional)]
    _image: Option<PathBuf>,
    /// auto (leave it to initramfs-tools or dracut when one is installed),
    /// always, or never (default auto)
    #[argh(option, default = "String::from(\"auto\")")]
    when: String,
    /// the module set: generic (default), qemu, host (this machine's
    /// drivers, `mkinitramfs --host`; only with --root /), or a list file
    #[argh(option, default = "String::from(\"generic\")")]
    modules: String,
    /// the tree the kernel is installed in (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    root: PathBuf,
    /// write the image here instead (kernel-install's staging area)
    #[argh(option)]
    output: Option<PathBuf>,
}

/// Why the hook did or did not act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do, and why.
    Skip(String),
    /// The images to write (add) or remove.
    Act(Vec<PathBuf>),
}

/// The other initramfs generators, by a program each installs.
const OTHERS: [(&str, &str); 2] =
    [("initramfs-tools", "usr/sbin/update-initramfs"), ("dracut", "usr/bin/dracut")];

/// Where rootstock's image for `kver` goes in the tree at `root`: beside
/// each kernel image there is of it.
pub fn destinations(root: &Path, kver: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if root.join(format!("boot/vmlinuz-{kver}")).is_file() {
        out.push(root.join(format!("boot/initrd.img-{kver}")));
    }
    let modules = root.join("usr/lib/modules").join(kver);
    if modules.join("vmlinuz").is_file() {
        out.push(modules.join("initramfs.img"));
    }
    out
}

/// Decide: `when` (auto, always, never) against the generators installed
/// in `root`, then the destinations (`output` wins).
pub fn decide(root: &Path, kver: &str, when: &str, output: Option<&Path>) -> Result<Decision, String> {
    match when {
        "never" => return Ok(Decision::Skip("off (ROOTSTOCK_INITRAMFS=never)".into())),
        "always" => {}
        "auto" => {
            if let Some((name, _)) = OTHERS.iter().find(|(_, prog)| root.join(prog).exists()) {
                return Ok(Decision::Skip(format!(
                    "{name} is installed and makes the initramfs: rootstock leaves it \
                     (ROOTSTOCK_INITRAMFS=always in /etc/default/rootstock to make rootstock's instead)"
                )));
            }
        }
        other => return Err(format!("--when {other}: not auto, always or never")),
    }
    if kver.is_empty() || kver.contains('/') || kver.starts_with('.') {
        return Err(format!("{kver:?}: not a kernel release"));
    }
    if let Some(o) = output {
        return Ok(Decision::Act(vec![o.to_path_buf()]));
    }
    let dest = destinations(root, kver);
    if dest.is_empty() {
        return Ok(Decision::Skip(format!(
            "no kernel image for {kver} (boot/vmlinuz-{kver} or usr/lib/modules/{kver}/vmlinuz under {})",
            root.display()
        )));
    }
    Ok(Decision::Act(dest))
}

pub fn run(a: KernelHookArgs) -> Result<(), crate::Error> {
    let hook = |why: String| crate::Error::KernelHook { why };
    let decision = decide(&a.root, &a.kver, &a.when, a.output.as_deref()).map_err(hook)?;
    let paths = match decision {
        Decision::Skip(why) => {
            log::info!("kernel {}: {why}", a.kver);
            return Ok(());
        }
        Decision::Act(paths) => paths,
    };
    match a.command.as_str() {
        "add" => {
            let image = build(&a)?;
            for p in &paths {
                crate::output::write(p, &image.bytes)
                    .map_err(|e| hook(format!("{}: {}", e.path.display(), e.errno)))?;
                log::info!(
                    "kernel {}: {} written ({} bytes {}, {} modules)",
                    a.kver,
                    p.display(),
                    image.bytes.len(),
                    image.compression,
                    image.modules.len()
                );
            }
            Ok(())
        }
        "remove" => {
            for p in &paths {
                let dir = p.parent().unwrap_or(Path::new("/")).to_path_buf();
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let op = rootstock_core::seam::Op::Unlink { dir, name };
                match rootstock_core::seam::System::execute(&mut rootstock_sys::Linux, &op) {
                    Ok(()) => log::info!("kernel {}: {} removed", a.kver, p.display()),
                    // Already gone: nothing to do.
                    Err(rootstock_core::errno::Errno::NOENT) => {}
                    Err(e) => return Err(hook(format!("remove {}: {e}", p.display()))),
                }
            }
            Ok(())
        }
        other => Err(hook(format!("{other}: not add or remove"))),
    }
}

/// The image for the kernel in the tree at `a.root`: its modules, the boot
/// program and configuration installed there.
fn build(a: &KernelHookArgs) -> Result<mkinitramfs::Image, crate::Error> {
    let root = &a.root;
    let mut add_modules = Vec::new();
    let set = if a.modules == "host" {
        if root != Path::new("/") {
            return Err(crate::Error::KernelHook { why: "--modules host needs --root /".into() });
        }
        let host = crate::hostonly::HostOptions {
            sysfs: PathBuf::from("/sys"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            root_device: None,
            root_fstype: None,
        };
        let mut tree = crate::modules::ModuleTree::open(&root.join("usr/lib/modules").join(&a.kver), &a.kver)
            .map_err(mkinitramfs::MkError::from)?;
        add_modules = crate::hostonly::pick(&host, &mut tree).map_err(mkinitramfs::MkError::from)?.modules();
        None
    } else {
        Some(a.modules.clone())
    };
    let opts = Options {
        kver: Some(a.kver.clone()),
        modules_dir: root.join("usr/lib/modules"),
        module_set: set,
        list_dirs: mkinitramfs::LIST_DIRS.iter().map(|d| root.join(d.trim_start_matches('/'))).collect(),
        add_modules,
        binary: root.join(mkinitramfs::INSTALLED_BOOT_BINARY.trim_start_matches('/')),
        extras: Vec::new(),
        compress: None,
        firmware_dir: Some(root.join("usr/lib/firmware")),
        config_root: Some(root.clone()),
    };
    Ok(mkinitramfs::build(&opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> rootstock_core::testutil::TempDir {
        let t = rootstock_core::testutil::TempDir::new();
        for f in files {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        t
    }

    #[test]
    fn beside_each_kernel_image_there_is() {
        let k = "6.12.0-1-amd64";
        let t = tree(&[&format!("boot/vmlinuz-{k}")]);
        assert_eq!(destinations(t.path(), k), [t.path().join(format!("boot/initrd.img-{k}"))]);
        let t = tree(&[&format!("usr/lib/modules/{k}/vmlinuz")]);
        assert_eq!(destinations(t.path(), k), [t.path().join(format!("usr/lib/modules/{k}/initramfs.img"))]);
        let t = tree(&[&format!("boot/vmlinuz-{k}"), &format!("usr/lib/modules/{k}/vmlinuz")]);
        assert_eq!(destinations(t.path(), k).len(), 2, "an OSTree build with Debian's /boot too");
        let t = tree(&[]);
        assert!(
            matches!(decide(t.path(), k, "auto", None), Ok(Decision::Skip(why)) if why.contains("no kernel image"))
        );
    }

    #[test]
    fn auto_leaves_the_image_to_another_installed_generator() {
        let k = "6.12.0-1-amd64";
        for (prog, name) in [("usr/sbin/update-initramfs", "initramfs-tools"), ("usr/bin/dracut", "dracut")] {
            let t = tree(&[&format!("boot/vmlinuz-{k}"), prog]);
            let d = decide(t.path(), k, "auto", None).unwrap();
            assert!(matches!(&d, Decision::Skip(why) if why.starts_with(name)), "{d:?}");
            assert_eq!(
                decide(t.path(), k, "always", None).unwrap(),
                Decision::Act(destinations(t.path(), k))
            );
        }
        let t = tree(&[&format!("boot/vmlinuz-{k}")]);
        assert!(matches!(decide(t.path(), k, "never", None), Ok(Decision::Skip(_))));
        let staging = Path::new("/tmp/staging/initrd");
        assert_eq!(decide(t.path(), k, "auto", Some(staging)).unwrap(), Decision::Act(vec![staging.into()]));
        assert!(decide(t.path(), k, "sometimes", None).is_err());
        assert!(decide(t.path(), "../../etc", "auto", None).is_err(), "a release is a name");
    }
}
