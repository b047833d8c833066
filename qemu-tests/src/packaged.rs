//! rootstock as a Debian user meets it: its package installed in a Debian
//! trixie tree (a chroot), then a kernel package, whose postinst hook runs
//! rootstock's; and an OSTree image built from such a tree as an image
//! build does it (packages → tree → `ostree commit` → `ostree admin
//! deploy`), booted by OVMF and systemd-boot from the entries ostree wrote.
//!
//! The image's ostree is Debian's newest (2026.4, from sid, in a builder
//! chroot of its own, cached): ostree ≥ 2025.3 names the entries for
//! systemd-boot's counting (`[sysroot] boot-counting-tries`), which trixie's
//! 2025.2 and Debian 12's 2022.7 cannot.

use crate::arch::Arch;
use crate::kernel::Kernel;
use crate::scenario::Scenario;
use crate::trixie::{STATEROOT, trixie_rootfs};
use crate::uefi::{UefiDisk, UefiScenario};
use crate::util::{Result, cache_dir, err, fnv1a, io, lock, repo_root, run, tmpfs_dir};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The amd64 package `make deb` wrote.
pub fn package() -> Result<PathBuf> {
    let dir = repo_root().join("target/debian");
    std::fs::read_dir(&dir)
        .ok()
        .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("_amd64.deb")))
        .map_or_else(|| err(format!("no rootstock_*_amd64.deb in {}: run `make deb`", dir.display())), Ok)
}

/// `chroot TREE sh -ec SCRIPT` with the host's /proc, /sys and /dev, and
/// each `(host dir, path in TREE)` of `binds` bound; its output.
pub fn in_chroot(tree: &Path, binds: &[(&Path, &str)], script: &str) -> Result<String> {
    let mut full = String::from(
        "set -e; for d in proc sys dev; do mount --rbind /$d \"$T/$d\"; mount --make-rslave \"$T/$d\"; done; ",
    );
    for (i, (_, inside)) in binds.iter().enumerate() {
        full.push_str(&format!("mkdir -p \"$T{inside}\"; mount --bind \"$B{i}\" \"$T{inside}\"; "));
    }
    full.push_str(&format!("chroot \"$T\" /bin/sh -ec '{}'", script.replace('\'', "'\\''")));
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &full])
        .env("T", tree)
        .env("DEBIAN_FRONTEND", "noninteractive");
    for (i, (host, _)) in binds.iter().enumerate() {
        cmd.env(format!("B{i}"), host);
    }
    let out = io(cmd.output(), "run unshare for", tree)?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return err(format!("in the chroot {}: {script}\n{text}", tree.display()));
    }
    Ok(text)
}

/// The debs of `packages` from trixie's archive, downloaded once into
/// `<cache>/debs-trixie`.
pub fn trixie_debs(packages: &[String]) -> Result<PathBuf> {
    let debs = cache_dir().join("debs-trixie");
    io(std::fs::create_dir_all(&debs), "create", &debs)?;
    for pkg in packages {
        let have = io(std::fs::read_dir(&debs), "read", &debs)?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&format!("{pkg}_")));
        if !have {
            crate::kernel::download_trixie(pkg, &debs)?;
        }
    }
    Ok(debs)
}

/// A trixie tree at `tree` (replaced) with rootstock's package installed,
/// then `linux-base` and `kernel`'s package: their postinst ran
/// rootstock's hook. Returns what dpkg said installing the kernel.
pub fn install_package_and_kernel(tree: &Path, kernel: &Kernel) -> Result<String> {
    let deb = package()?;
    let (rootfs, _) = trixie_rootfs()?;
    let debs = trixie_debs(&[format!("linux-image-{}", kernel.version), "linux-base".into()])?;
    let _ = Command::new("rm").arg("-rf").arg(tree).status();
    run(Command::new("cp").arg("-a").arg(&rootfs).arg(tree))?;
    run(Command::new("sh").arg("-c").arg(format!(
        "cp {}/linux-base_*.deb {}/linux-image-{}_*.deb {} '{}/tmp/'",
        debs.display(),
        debs.display(),
        kernel.version,
        deb.display(),
        tree.display()
    )))?;
    in_chroot(tree, &[], "dpkg -i /tmp/rootstock_*.deb")?;
    in_chroot(tree, &[], "dpkg -i /tmp/linux-base_*.deb && dpkg --force-depends -i /tmp/linux-image-*.deb")
}

/// The builder: trixie with sid's ostree (and what it needs from sid),
/// cached in `<cache>/trixie/builder-KEY/`.
pub fn ostree_builder() -> Result<PathBuf> {
    let (rootfs, _) = trixie_rootfs()?;
    let mirror = crate::trixie::mirror();
    let key = format!("builder-1\n{}\n{mirror}\nostree/sid\n", rootfs.display());
    let dir = cache_dir().join("trixie");
    let builder = dir.join(format!("builder-{:016x}", fnv1a(key.as_bytes())));
    let _guard = lock("trixie-builder")?;
    if builder.join(".complete").exists() {
        return Ok(builder);
    }
    let tmp = builder.with_extension("tmp");
    let _ = Command::new("rm").arg("-rf").arg(&tmp).status();
    run(Command::new("cp").arg("-a").arg(&rootfs).arg(&tmp))?;
    let sources = tmp.join("etc/apt/sources.list");
    io(
        std::fs::write(&sources, format!("deb {mirror} trixie main\ndeb {mirror} sid main\n")),
        "write",
        &sources,
    )?;
    let _ = std::fs::remove_dir_all(tmp.join("etc/apt/sources.list.d"));
    let resolv = tmp.join("etc/resolv.conf");
    let _ = std::fs::remove_file(&resolv);
    io(std::fs::copy("/etc/resolv.conf", &resolv), "copy /etc/resolv.conf to", &resolv)?;
    // sid's Release file is valid for a week; a mirror snapshot is older.
    in_chroot(
        &tmp,
        &[],
        "apt-get -o Acquire::Check-Valid-Until=false -qq update && \
         apt-get install -y -qq --no-install-recommends ostree/sid >/dev/null && ostree --version",
    )?;
    io(std::fs::write(tmp.join(".complete"), ""), "write", &tmp)?;
    let _ = Command::new("rm").arg("-rf").arg(&builder).status();
    io(std::fs::rename(&tmp, &builder), "rename to", &builder)?;
    Ok(builder)
}

/// Remove `dir`, deployments (immutable) included; best effort.
fn remove_tree(dir: &Path) {
    let script = "chattr -R -i \"$1\" 2>/dev/null; rm -rf \"$1\"";
    let _ = Command::new("sh").arg("-c").arg(script).arg("sh").arg(dir).status();
}

/// What the packaged image's version 2 runs as init: an update whose
/// userspace dies at once (nothing rootstock can see before switching
/// root), so that the machine resets and the boot loader tries again.
const BROKEN_INIT: &str = "#!/bin/sh\n\
    # rootstock's packaged test OS, version 2: an init that dies at once\n\
    echo \"TESTOS-BROKEN-INIT version $(cat /usr/share/testos/version)\"\n\
    echo b >/proc/sysrq-trigger\n";

/// Tries systemd-boot gives each entry ostree writes.
pub const BOOT_COUNTING_TRIES: u32 = 2;
/// The root partition of the packaged image.
const ROOT_MB: u64 = 3072;

/// The OSTree image built from `installed` (a tree from
/// [`install_package_and_kernel`], copied): the kernel moved where an OSTree
/// image keeps it and rootstock's hook run again (with
/// `ROOTSTOCK_MODULES=qemu` in /etc/default/rootstock), made OSTree-ready,
/// committed as version 1 and, with a broken init, version 2; both deployed
/// by sid's ostree with boot counting on; the ESP filled from /boot.
/// Returns the scenario and what the hook said.
pub fn ostree_image(name: &str, installed: &Path, kernel: &Kernel) -> Result<(UefiScenario, String)> {
    let kver = &kernel.version;
    let builder = ostree_builder()?;
    let build = tmpfs_dir().join(format!("rootstock-{name}"));
    remove_tree(&build);
    let tree = build.join("tree");
    io(std::fs::create_dir_all(&build), "create", &build)?;
    run(Command::new("cp").arg("-a").arg(installed).arg(&tree))?;
    let hook = in_chroot(
        &tree,
        &[],
        &format!(
            "echo ROOTSTOCK_MODULES=qemu >>/etc/default/rootstock
             mv /boot/vmlinuz-{kver} /usr/lib/modules/{kver}/vmlinuz
             rm -f /boot/initrd.img-{kver}
             /etc/kernel/postinst.d/rootstock {kver} /usr/lib/modules/{kver}/vmlinuz
             mkdir -p /efi
             echo 'PARTLABEL=ESP /efi vfat umask=0077 0 1' >/etc/fstab"
        ),
    )?;
    run(Command::new(repo_root().join("qemu-tests/trixie/ostree-ready.sh"))
        .arg(&tree)
        .env("TRIXIE_PACKAGED", "1"))?;
    let broken = build.join("broken-init");
    io(std::fs::write(&broken, BROKEN_INIT), "write", &broken)?;
    let sysroot = build.join("sysroot");
    io(std::fs::create_dir_all(&sysroot), "create", &sysroot)?;
    let branch = "debian/trixie/packaged";
    let commit = |v: u32| {
        format!(
            "mkdir -p /work/tree/usr/share/testos && echo {v} >/work/tree/usr/share/testos/version
             ostree commit --repo=/work/sysroot/ostree/repo --branch={branch} --tree=dir=/work/tree \
               --subject='packaged {v}' --add-metadata-string=version={v} --timestamp=@{}
             ostree admin deploy --retain --sysroot=/work/sysroot --os={STATEROOT} \
               --karg=root=LABEL={} --karg=rw --karg=rootstock.tries=3 {branch}",
            1_700_000_000 + v,
            crate::sysroot::ROOT_LABEL
        )
    };
    let script = format!(
        "ostree admin init-fs /work/sysroot
         ostree admin os-init --sysroot=/work/sysroot {STATEROOT}
         ostree --repo=/work/sysroot/ostree/repo config set sysroot.bootloader none
         ostree --repo=/work/sysroot/ostree/repo config set sysroot.boot-counting-tries {BOOT_COUNTING_TRIES}
         {}
         install -m 0755 /work/broken-init /work/tree/usr/lib/systemd/systemd
         {}
         ls /work/sysroot/boot/loader/entries",
        commit(1),
        commit(2)
    );
    let deployed = in_chroot(&builder, &[(&build, "/work")], &script)?;
    eprintln!(
        "[{name}] sid's ostree deployed; entries: {}",
        deployed.lines().filter(|l| l.ends_with(".conf")).collect::<Vec<_>>().join(" ")
    );
    let work = cache_dir().join("work").join(name);
    let _ = std::fs::remove_dir_all(&work);
    io(std::fs::create_dir_all(&work), "create", &work)?;
    let image = work.join("disk.raw");
    let disk = UefiDisk::build_from(&sysroot, ROOT_MB, None, &image, &work.join("esp"), Arch::X86_64)?;
    let entries = disk.entries.iter().map(|e| e.entry.clone()).collect();
    let initramfs = work.join("initramfs.img");
    let made = tree.join(format!("usr/lib/modules/{kver}/initramfs.img"));
    io(std::fs::copy(&made, &initramfs), "copy to the work directory:", &made)?;
    let scenario = Scenario::from_parts(name, work, kernel.clone(), entries, image);
    // The tree and the sysroot are on the disk image now.
    remove_tree(&build);
    Ok((UefiScenario { scenario, disk, initramfs }, hook))
}
