//! The dracut module puts into the image the boot program of the image's
//! architecture: real dracut (the host's 059, with the checkout's module),
//! building an image for Debian's arm64 kernel and for its amd64 kernel
//! (`--kmoddir`), once with the boot program of the kernel's architecture
//! (installed at /usr/lib/rootstock/rootstock-boot: the same bytes) and
//! once with the other one (refused, naming both machines). On an arm64
//! machine dracut does the same with the arm64 package's program.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `lib/modules/KVER` of the newest unpacked Debian 12 kernel of flavour
/// `arch` in `.cache/kernel` (`make deps` fetches both).
fn kernel_modules(arch: &str) -> PathBuf {
    let cache = repo().join(".cache/kernel");
    let mut roots: Vec<PathBuf> =
        std::fs::read_dir(&cache).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    roots.retain(|p| {
        // Debian 12's (the QEMU harness keeps Debian 13's, `…+deb13-…`, there too).
        p.join(".complete").exists()
            && p.file_name().is_some_and(|n| {
                n.to_string_lossy().ends_with(arch) && !n.to_string_lossy().contains("+deb13")
            })
    });
    roots.sort();
    let root = roots.pop().unwrap_or_else(|| {
        panic!("no {arch} kernel in {}: run `make deps` (tests/fixtures/fetch-kernel.sh)", cache.display())
    });
    let kver = root.file_name().unwrap().to_owned();
    root.join("lib/modules").join(kver)
}

fn binary(var: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: run the tests with `make check`, which builds it"))
}

/// Whether dracut is here (`make deps` installs dracut-core); says why not,
/// and fails where the whole suite is required.
fn have_dracut() -> bool {
    // (dracut 059's --version exits 1: only whether it starts counts)
    if Command::new("dracut").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("ROOTSTOCK_REQUIRE_ROOT_TESTS").is_none(),
        "dracut is not installed (make deps installs dracut-core)"
    );
    eprintln!("skipping: dracut is not installed");
    false
}

/// The host's dracut with the checkout's module in place of any installed one.
fn dracut_base(tmp: &Path) -> PathBuf {
    let base = tmp.join("dracut");
    let ok = Command::new("cp").arg("-a").arg("/usr/lib/dracut").arg(&base).status().unwrap();
    assert!(ok.success());
    let module = base.join("modules.d/98rootstock");
    let _ = std::fs::remove_dir_all(&module);
    let ok = Command::new("cp")
        .arg("-a")
        .arg(repo().join("dracut-module/98rootstock"))
        .arg(&module)
        .status()
        .unwrap();
    assert!(ok.success());
    base
}

/// dracut for the kernel whose modules are in `kmoddir`, with `boot_bin`
/// as ROOTSTOCK_BOOT_BIN; its output (stdout + stderr) and, when it made
/// one, the image.
fn dracut(base: &Path, kmoddir: &Path, boot_bin: &Path, out: &Path) -> (bool, String) {
    let kver = kmoddir.file_name().unwrap().to_string_lossy().into_owned();
    let o = Command::new("dracut")
        .env("dracutbasedir", base)
        .env("ROOTSTOCK_BOOT_BIN", boot_bin)
        .args(["--force", "--no-hostonly", "--no-early-microcode", "-m", "rootstock", "--kver", &kver])
        .arg("--kmoddir")
        .arg(kmoddir)
        .args(["--compress", "cat"])
        .arg(out)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

/// `/usr/lib/rootstock/rootstock-boot` from the (uncompressed) image.
fn boot_program_in(image: &Path, scratch: &Path) -> Vec<u8> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    let ok = Command::new("cpio")
        .args(["-i", "--quiet", "-d", "usr/lib/rootstock/rootstock-boot"])
        .current_dir(scratch)
        .stdin(std::fs::File::open(image).unwrap())
        .status()
        .unwrap();
    assert!(ok.success(), "cpio -i {}", image.display());
    let path = scratch.join("usr/lib/rootstock/rootstock-boot");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{} not in the image: {e}", path.display()))
}

#[test]
fn the_module_installs_the_boot_program_of_the_images_architecture() {
    if !have_dracut() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("rootstock-dracut-module-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let base = dracut_base(&tmp);
    let x86 = binary("ROOTSTOCK_BOOT_BIN");
    let arm64 = binary("ROOTSTOCK_ARM64_BOOT_BIN");
    for (arch, machine, right, wrong, wrong_machine) in
        [("arm64", "aarch64", &arm64, &x86, "x86_64"), ("amd64", "x86_64", &x86, &arm64, "aarch64")]
    {
        let kmoddir = kernel_modules(arch);
        let image = tmp.join(format!("{arch}.img"));
        let (ok, out) = dracut(&base, &kmoddir, right, &image);
        assert!(ok, "dracut for {arch} with the {machine} program failed:\n{out}");
        let installed = boot_program_in(&image, &tmp.join(arch));
        assert!(installed == std::fs::read(right).unwrap(), "{arch}: not the bytes of {}", right.display());

        let _ = std::fs::remove_file(&image);
        let (ok, out) = dracut(&base, &kmoddir, wrong, &image);
        assert!(!ok, "dracut for {arch} took the {wrong_machine} program:\n{out}");
        let want = format!("is built for {wrong_machine}, the kernel's modules ({}", kmoddir.display());
        assert!(out.contains(&want) && out.contains(&format!(") for {machine}")), "{want}:\n{out}");
        assert!(!image.exists(), "{arch}: an image was written anyway");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The machine check reads only regular `*.ko` files of the kernel's
/// module directory: a FIFO or a symlink to `/dev/zero` there is skipped,
/// never read (no hang), and the first regular module decides.
#[test]
fn the_machine_check_skips_fifos_and_device_links() {
    let tmp = std::env::temp_dir().join(format!("rootstock-dracut-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let k = tmp.join("kernel");
    std::fs::create_dir_all(&k).unwrap();
    assert!(Command::new("mkfifo").arg(k.join("a.ko")).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/zero", k.join("b.ko")).unwrap();
    // An arm64 module: an ELF header with e_machine 183.
    let mut elf = vec![0u8; 64];
    elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
    elf[18..20].copy_from_slice(&183u16.to_le_bytes());
    std::fs::write(k.join("c.ko"), elf).unwrap();
    let script = repo().join("dracut-module/98rootstock/module-setup.sh");
    let out = Command::new("timeout")
        .args(["20", "bash", "-c", "dinfo() { :; }; derror() { :; }; source \"$0\"; kernel_machine"])
        .arg(&script)
        .env("srcmods", &tmp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "aarch64");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The generator of the systemd initramfs: when init= names ostree's
/// prepare-root (ostree's convention for a commit without an initramfs,
/// booted through a dracut image all the same), systemd switches root into
/// the deployment's own init; any other init= (the last one counts) is
/// left alone.
#[test]
fn the_generator_replaces_ostrees_prepare_root_as_init() {
    let tmp = std::env::temp_dir().join(format!("rootstock-generator-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let dropin = "initrd-switch-root.service.d/50-rootstock-init.conf";
    let ostree = "init=/ostree/boot.1/os/abc/0/usr/lib/ostree/ostree-prepare-root";
    let cases = [
        (format!("root=UUID=x ostree=/ostree/boot.1/os/abc/0 {ostree} quiet"), true),
        (format!("{ostree} init=/bin/sh"), false),
        ("init=/bin/sh ostree=/x".to_string(), false),
        ("ostree=/x *".to_string(), false),
        (format!("init=/bin/sh {ostree}"), true),
    ];
    for (n, (cmdline, replaced)) in cases.iter().enumerate() {
        let out = tmp.join(format!("out{n}"));
        std::fs::write(tmp.join("cmdline"), cmdline).unwrap();
        let o = Command::new("sh")
            .arg(repo().join("dracut-module/98rootstock/rootstock-generator.sh"))
            .arg(&out)
            .env("ROOTSTOCK_CMDLINE", tmp.join("cmdline"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmdline}: {}", String::from_utf8_lossy(&o.stderr));
        let written = std::fs::read_to_string(out.join(dropin));
        assert_eq!(written.is_ok(), *replaced, "{cmdline}");
        if let Ok(text) = written {
            assert!(
                text.contains("ExecStart=\nExecStart=systemctl --no-block switch-root /sysroot /sbin/init\n"),
                "{text}"
            );
        }
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// With systemd in the image, dracut installs the generator where systemd
/// runs generators.
#[test]
fn a_systemd_image_gets_the_generator() {
    if !have_dracut() {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("rootstock-dracut-generator-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let base = dracut_base(&tmp);
    let kmoddir = kernel_modules("amd64");
    let kver = kmoddir.file_name().unwrap().to_string_lossy().into_owned();
    let image = tmp.join("systemd.img");
    let o = Command::new("dracut")
        .env("dracutbasedir", &base)
        .env("ROOTSTOCK_BOOT_BIN", binary("ROOTSTOCK_BOOT_BIN"))
        .args([
            "--force",
            "--no-hostonly",
            "--no-early-microcode",
            "-m",
            "systemd rootstock",
            "--kver",
            &kver,
        ])
        .arg("--kmoddir")
        .arg(&kmoddir)
        .args(["--compress", "cat"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dracut: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let scratch = tmp.join("x");
    std::fs::create_dir_all(&scratch).unwrap();
    let gen_path = "usr/lib/systemd/system-generators/rootstock-generator";
    let ok = Command::new("cpio")
        .args(["-i", "--quiet", "-d", gen_path])
        .current_dir(&scratch)
        .stdin(std::fs::File::open(&image).unwrap())
        .status()
        .unwrap();
    assert!(ok.success());
    let installed =
        std::fs::read(scratch.join(gen_path)).unwrap_or_else(|e| panic!("{gen_path} not in the image: {e}"));
    assert_eq!(
        installed,
        std::fs::read(repo().join("dracut-module/98rootstock/rootstock-generator.sh")).unwrap()
    );
    std::fs::remove_dir_all(&tmp).unwrap();
}
