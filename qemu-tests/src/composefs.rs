//! The composefs scenario's disk, under Debian 13's kernel (6.12: file-backed
//! EROFS, overlayfs data-only layers with `verity=require`, fs-verity): the
//! busybox test OS with three deployments, each with its `.ostree.cfs`
//! written as ostree ≥ 2023.4 writes it (`rootstock-mkcfs`; Debian 12's
//! ostree has no composefs), the newest one a commit signed with Ed25519
//! whose metadata names its image's fs-verity digest (what `ostree commit
//! --generate-composefs-metadata` and `ostree sign` make; Debian 12's ostree
//! has neither, so the test signs the commit object's bytes itself and writes
//! the detached metadata as ostree does).
//!
//! The host here may have no fs-verity (the CI machine's kernel has none,
//! and its ext4 then refuses to mount a `verity` filesystem read-write), so
//! fs-verity is enabled in the guest: the disk carries `mkcfs` and hook
//! scripts on the physical root, run by the test OS (`testos.hook=NAME`).

use std::path::{Path, PathBuf};
use std::process::Command;

use ed25519_compact::{KeyPair, Seed};

use crate::arch::Arch;
use crate::kernel::trixie_kernel_for;
use crate::scenario::Scenario;
use crate::sysroot::{DiskSpec, Sysroot, TestOs, build_sysroot};
use crate::util::{Result, cache_dir, err, io, run};

/// The composefs disk and what its tests need to know about it.
pub struct ComposefsDisk {
    pub scenario: Scenario,
    /// The public key (base64, as `composefs.keypath` holds it) that
    /// signed deployment 0's commit.
    pub public_key: String,
    /// The fs-verity digest deployment 0's signed commit names.
    pub digest: String,
}

/// The key the scenario signs with: fixed, so the disk is reproducible.
fn key() -> KeyPair {
    KeyPair::from_seed(Seed::new([42; 32]))
}

fn base64(bytes: &[u8]) -> Result<String> {
    let tmp = std::env::temp_dir().join(format!("rootstock-key-{}", std::process::id()));
    io(std::fs::write(&tmp, bytes), "write", &tmp)?;
    let out = run(Command::new("base64").arg("-w0").arg(&tmp));
    let _ = std::fs::remove_file(&tmp);
    Ok(out?.trim().to_string())
}

/// `a{sv}` with one entry whose value is an `aay` of one 64-byte signature:
/// the detached metadata `ostree sign --sign-type=ed25519` writes.
fn commitmeta(signature: &[u8]) -> Vec<u8> {
    let key = b"ostree.sign.ed25519\0";
    let mut entry = key.to_vec();
    entry.resize(key.len().next_multiple_of(8), 0);
    // The aay: the element, then its end (one framing offset, 1 byte).
    entry.extend_from_slice(signature);
    entry.push(64);
    entry.push(0);
    entry.extend_from_slice(b"aay");
    // The entry's framing offset: where the key ends.
    entry.push(key.len() as u8);
    // The array's framing offset: where the one entry ends.
    let end = entry.len() as u8;
    entry.push(end);
    entry
}

/// The object path of a deployment file (its hardlink in the repository).
fn object_of(sysroot: &Path, file: &Path) -> Result<PathBuf> {
    rootstock_mkcfs::object_of(sysroot, file).map_err(|e| crate::Error(e.to_string()))
}

/// A signed commit of deployment 0's tree whose metadata names its image's
/// digest, deployed as the new default (the others are kept).
fn deploy_signed(sysroot: &mut Sysroot) -> Result<[u8; 32]> {
    let d0 = sysroot.deployment_dir(0)?;
    let rel = d0.strip_prefix(&sysroot.dir).map_err(|e| crate::Error(e.to_string()))?.to_path_buf();
    let opts = rootstock_mkcfs::Options::default();
    let image = rootstock_mkcfs::image(&sysroot.dir, &rel, &opts).map_err(|e| crate::Error(e.to_string()))?;
    let digest = rootstock_mkcfs::verity_digest(&image[..]).map_err(|e| crate::Error(e.to_string()))?;
    let name = d0.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let csum = name.split('.').next().unwrap_or_default().to_string();
    let bytes: Vec<String> = digest.iter().map(|b| format!("byte 0x{b:02x}")).collect();
    let repo = sysroot.dir.join("ostree/repo");
    let new = run(Command::new("ostree")
        .arg("commit")
        .arg(format!("--repo={}", repo.display()))
        .arg(format!("--branch={}", sysroot.branch))
        .arg(format!("--tree=ref={csum}"))
        .arg("--subject=signed, with its composefs digest")
        .arg("--add-metadata-string=version=3")
        .arg(format!("--add-metadata=ostree.composefs.digest.v0=[{}]", bytes.join(", ")))
        .arg("--timestamp=@1700000200"))?;
    let new = new.trim();
    let object = repo.join(format!("objects/{}/{}", &new[..2], &new[2..]));
    let commit = io(std::fs::read(object.with_extension("commit")), "read", &object)?;
    let signature = key().sk.sign(&commit, None);
    let meta = object.with_extension("commitmeta");
    io(std::fs::write(&meta, commitmeta(&signature[..])), "write", &meta)?;
    sysroot.deploy(true)?;
    Ok(digest)
}

/// The composefs disk (made fresh in `<cache>/work/NAME/`): deployments
/// 0 (signed, the tree of version 2), 1 (version 2, unsigned), 2 (version
/// 1), each with its image; the physical root holds `mkcfs` and the hooks
/// `verity` (enable fs-verity on every object and image) and `tamper`
/// (deployment 0's image replaced by deployment 2's, by a hardlink that
/// keeps its fs-verity; the object of version 2's `usr/share/testos/version`
/// replaced by version 1's).
pub fn composefs_disk(name: &str) -> Result<ComposefsDisk> {
    let kernel = trixie_kernel_for(Arch::X86_64)?;
    let work = cache_dir().join("work").join(name);
    let _ = std::fs::remove_dir_all(&work);
    io(std::fs::create_dir_all(&work), "create", &work)?;
    let mut sysroot = build_sysroot(&kernel, &TestOs { deployments: 2, ..Default::default() })?;
    let digest = deploy_signed(&mut sysroot)?;
    let dirs: Vec<PathBuf> = (0..3).map(|i| sysroot.deployment_dir(i)).collect::<Result<_>>()?;
    let rel = |p: &Path| p.strip_prefix(&sysroot.dir).map(Path::to_path_buf);
    let mut verity = String::from("set -eu\n");
    for (i, d) in dirs.iter().enumerate() {
        let d = rel(d).map_err(|e| crate::Error(e.to_string()))?;
        run(Command::new("chattr").arg("-i").arg(sysroot.dir.join(&d)))?;
        let written = rootstock_mkcfs::write_image(&sysroot.dir, &d, &rootstock_mkcfs::Options::default())
            .map_err(|e| crate::Error(e.to_string()))?;
        // The same tree gives the same image: the one the commit names.
        if i == 0 && written != digest {
            return err(format!(
                "deployment 0's image has digest {}, its commit names {}",
                rootstock_mkcfs::hex(&written),
                rootstock_mkcfs::hex(&digest)
            ));
        }
        verity.push_str(&format!(
            "/sysroot/mkcfs --physical-root /sysroot --deployment {} --enable-verity\n",
            d.display()
        ));
    }
    let image_of = |i: usize| -> Result<String> {
        Ok(format!(
            "/sysroot/{}/.ostree.cfs",
            rel(&dirs[i]).map_err(|e| crate::Error(e.to_string()))?.display()
        ))
    };
    let version = "usr/share/testos/version";
    let in_guest = |p: PathBuf| -> Result<String> {
        Ok(format!(
            "/sysroot/{}",
            p.strip_prefix(&sysroot.dir).map_err(|e| crate::Error(e.to_string()))?.display()
        ))
    };
    let tamper = format!(
        "set -eu\nln -f {} {}\nln -f {} {}\nsync\n",
        image_of(2)?,
        image_of(0)?,
        in_guest(object_of(&sysroot.dir, &dirs[2].join(version))?)?,
        in_guest(object_of(&sysroot.dir, &dirs[1].join(version))?)?,
    );
    for (hook, text) in [("verity", verity), ("tamper", tamper)] {
        let path = sysroot.dir.join(format!("testos-hook-{hook}"));
        io(std::fs::write(&path, text), "write", &path)?;
    }
    let mkcfs = crate::arch::static_binary("ROOTSTOCK_MKCFS_BIN", "static", "mkcfs")?;
    run(Command::new("install").arg("-m0755").arg(&mkcfs).arg(sysroot.dir.join("mkcfs")))?;
    let image = work.join("disk.raw");
    sysroot.make_disk(&image, &DiskSpec { verity: true, size_mb: 1024, ..DiskSpec::default() })?;
    let entries = sysroot.entries.clone();
    Ok(ComposefsDisk {
        scenario: Scenario::from_parts(name, work, kernel, entries, image),
        public_key: base64(&key().pk[..])?,
        digest: rootstock_mkcfs::hex(&digest),
    })
}
