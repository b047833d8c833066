//! The physical-machine path: UEFI firmware (Debian's OVMF; AAVMF on arm64)
//! starts systemd-boot (Debian's systemd-boot-efi) from the disk's EFI system
//! partition; systemd-boot reads the BLS entries that `ostree admin deploy`
//! wrote and loads the kernel and rootstock's initramfs from the ESP. QEMU
//! gets no `-kernel`.
//!
//! The disk is made without loop mounts: a GPT (`sgdisk`) with partition 1
//! the ESP (`mkfs.vfat --offset`, filled with mtools' `mcopy -i IMAGE@@OFFSET`)
//! and partition 2 the ext4 root (`mkfs.ext4 -d -E offset=`).

use crate::arch::Arch;
use crate::kernel::debian_kernel_for;
use crate::qemu::{Booted, Console, Pflash, QemuBoot};
use crate::report::Timings;
use crate::scenario::Scenario;
use crate::sysroot::{BootEntry, IMAGE_MB, ROOT_LABEL, Sysroot, TestOs, build_sysroot, parse_entry};
use crate::util::{Result, cache_dir, err, io, run};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian packages the UEFI scenarios need beyond the harness's own.
pub const UEFI_PACKAGES: &str = "ovmf systemd-boot-efi mtools dosfstools gdisk";
/// The same for arm64: AAVMF, and the arm64 systemd-boot fetched into the cache.
pub const UEFI_PACKAGES_ARM64: &str = "qemu-efi-aarch64 mtools dosfstools gdisk";

/// Size of the ESP: FAT32 needs at least 65525 clusters (32 MiB of 512-byte
/// clusters); the kernel and the initramfs take ~11 MB.
pub const ESP_MB: u64 = 64;
/// 512-byte sectors per MiB; partitions start on 1 MiB boundaries.
const SECTORS_PER_MB: u64 = 2048;

/// Whether the UEFI scenarios can run: the firmware, systemd-boot and the
/// disk tools are installed. Prints what is missing; with
/// `ROOTSTOCK_REQUIRE_QEMU_TESTS` set, panics instead.
pub fn can_run_uefi() -> bool {
    can_run_uefi_on(Arch::X86_64)
}

/// [`can_run_uefi`] for `arch` (arm64: AAVMF, and systemd-boot-efi:arm64,
/// which this fetches into the cache).
pub fn can_run_uefi_on(arch: Arch) -> bool {
    let (code, vars) = arch.firmware();
    let tools = ["sgdisk", "mkfs.vfat", "mcopy", "mtype"];
    let mut missing: Vec<String> =
        [code, vars].into_iter().filter(|f| !Path::new(f).exists()).map(String::from).collect();
    match arch.systemd_boot() {
        Ok((efi, _)) if efi.exists() => {}
        Ok((efi, _)) => missing.push(efi.display().to_string()),
        Err(e) => missing.push(format!("systemd-boot ({e})")),
    }
    missing.extend(
        tools.into_iter().filter(|t| Command::new(t).arg("--version").output().is_err()).map(String::from),
    );
    if missing.is_empty() {
        return true;
    }
    let packages = if arch == Arch::X86_64 { UEFI_PACKAGES } else { UEFI_PACKAGES_ARM64 };
    let why = format!("missing {} (apt-get install {packages})", missing.join(", "));
    assert!(std::env::var_os("ROOTSTOCK_REQUIRE_QEMU_TESTS").is_none(), "UEFI tests required but {why}");
    eprintln!("skipping UEFI test: {why}");
    false
}

/// One BLS entry as ostree wrote it, with its file name in `loader/entries/`.
#[derive(Clone, Debug, PartialEq)]
pub struct EntryFile {
    /// e.g. `ostree-2-testos.conf`
    pub file: String,
    pub text: String,
    pub entry: BootEntry,
}

impl EntryFile {
    /// A systemd-boot `default` glob that matches this entry and no other
    /// ostree entry, whether systemd-boot's entry id keeps `.conf` or not.
    pub fn default_pattern(&self) -> String {
        format!("{}*", self.file.trim_end_matches(".conf"))
    }
}

/// The entries of `SYSROOT/boot/loader/entries` with their file names, in
/// ostree's order (version descending: index 0 the default, 1 the rollback).
pub fn read_entry_files(sysroot: &Path) -> Result<Vec<EntryFile>> {
    let dir = sysroot.join("boot/loader/entries");
    let mut entries = Vec::new();
    for e in io(std::fs::read_dir(&dir), "read", &dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "conf") {
            let text = io(std::fs::read_to_string(&path), "read", &path)?;
            let entry = parse_entry(&text)?;
            let file = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
            entries.push(EntryFile { file, text, entry });
        }
    }
    entries.sort_by_key(|e| std::cmp::Reverse(e.entry.version));
    Ok(entries)
}

/// The entry as the ESP holds it: `console_args` put in front of the
/// `options` line (systemd-boot passes that line as the kernel command line,
/// and the harness reads the serial console); every other line unchanged.
pub fn esp_entry_text(text: &str, console_args: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix("options ") {
            Some(rest) => format!("options {console_args} {}\n", rest.trim_start()),
            None => format!("{l}\n"),
        })
        .collect()
}

/// systemd-boot's `loader/loader.conf`: no menu (timeout 0), boot the
/// entries matching `default` (a glob over entry ids).
pub fn loader_conf(default: &str) -> String {
    format!(
        "# written by rootstock's QEMU harness (qemu-tests/src/uefi.rs)\n\
         timeout 0\ndefault {default}\neditor no\nauto-entries no\nauto-firmware no\n"
    )
}

/// A GPT disk image: partition 1 the ESP with systemd-boot and the synced
/// BLS entries, partition 2 the ext4 root labelled [`ROOT_LABEL`].
#[derive(Clone, Debug)]
pub struct UefiDisk {
    pub image: PathBuf,
    /// Byte offset of the ESP in the image (mtools' `IMAGE@@OFFSET`).
    pub esp_offset: u64,
    /// The entries on the ESP (and on the root's /boot), ostree's order.
    pub entries: Vec<EntryFile>,
    /// The host directory the ESP was filled from (kept for inspection).
    pub esp_tree: PathBuf,
}

impl UefiDisk {
    /// Lay out `sysroot` on a new `image`, staging the ESP's files in
    /// `esp_tree`. The default entry is ostree's (index 0).
    ///
    /// Filling the ESP is what the bootloader-sync step of an OSTree system
    /// booted by systemd-boot does when /boot is not the ESP itself: copy
    /// the current `/boot/loader/entries/*.conf` and the kernel and initramfs
    /// files they name to the ESP at the same paths (relative to /boot), so
    /// that the entries' `linux`/`initrd` lines resolve on the ESP.
    pub fn build(sysroot: &Sysroot, image: &Path, esp_tree: &Path, arch: Arch) -> Result<UefiDisk> {
        Self::build_from(&sysroot.dir, IMAGE_MB, Some(0), image, esp_tree, arch)
    }

    /// [`UefiDisk::build`] for the physical root in `dir`, on a root
    /// partition of `root_mb`. `default`: the entry loader.conf names;
    /// `None` names none, so systemd-boot boots the first entry in its own
    /// order, in which an entry its counter marked bad (`+0-N`) comes last.
    pub fn build_from(
        dir: &Path,
        root_mb: u64,
        default: Option<usize>,
        image: &Path,
        esp_tree: &Path,
        arch: Arch,
    ) -> Result<UefiDisk> {
        let entries = read_entry_files(dir)?;
        if entries.is_empty() {
            return err(format!("no BLS entries in {}/boot/loader/entries", dir.display()));
        }
        let default = match default {
            Some(i) => Some(entries.get(i).ok_or_else(|| crate::util::Error(format!("no entry {i}")))?),
            None => None,
        };
        stage_esp(&dir.join("boot"), &entries, default, esp_tree, arch)?;

        let esp_start = SECTORS_PER_MB;
        let root_start = esp_start + ESP_MB * SECTORS_PER_MB;
        let root_sectors = root_mb * SECTORS_PER_MB;
        // + 1 MiB at the end for the backup GPT
        let size = (root_start + root_sectors + SECTORS_PER_MB) * 512;
        let _ = std::fs::remove_file(image);
        let file = io(std::fs::File::create(image), "create", image)?;
        io(file.set_len(size), "resize", image)?;
        drop(file);
        // EF00: EFI system partition; 8304/8305: Linux x86-64/arm64 root
        // (the Discoverable Partitions Specification's types).
        let root_type = match arch {
            Arch::X86_64 => "--typecode=2:8304",
            Arch::Aarch64 => "--typecode=2:8305",
        };
        run(Command::new("sgdisk")
            .arg("-o")
            .arg(format!("--new=1:{esp_start}:{}", root_start - 1))
            .args(["--typecode=1:EF00", "--change-name=1:ESP"])
            .arg(format!("--new=2:{root_start}:{}", root_start + root_sectors - 1))
            .args([root_type, "--change-name=2:root"])
            .arg(image))?;
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", ROOT_LABEL, "-d"])
            .arg(dir)
            .arg("-E")
            .arg(format!("offset={}", root_start * 512))
            .arg(image)
            .arg(format!("{root_mb}M")))?;
        // FAT32 as a real ESP; -s 1: 512-byte clusters, else mkfs.fat picks
        // 4 KiB ones, too few clusters for FAT32 (readers would take it for
        // FAT16); -h: hidden sectors = the partition's start.
        let start = esp_start.to_string();
        run(Command::new("mkfs.vfat")
            .args(["-F", "32", "-s", "1", "-n", "ESP", "-h", &start, "--offset", &start])
            .arg(image)
            .arg((ESP_MB * 1024).to_string()))?;
        let disk =
            UefiDisk { image: image.into(), esp_offset: esp_start * 512, entries, esp_tree: esp_tree.into() };
        let mut copy = disk.mtools("mcopy");
        copy.args(["-s", "-Q"]);
        for top in ["EFI", "loader", "ostree"] {
            copy.arg(esp_tree.join(top));
        }
        run(copy.arg("::/"))?;
        Ok(disk)
    }

    /// An mtools command on the ESP inside the image.
    fn mtools(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        // MTOOLS_SKIP_CHECK: no complaints about the FAT's geometry.
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(format!(
            "{}@@{}",
            self.image.display(),
            self.esp_offset
        ));
        c
    }

    /// Rewrite the ESP's `loader/loader.conf` so that systemd-boot boots
    /// entry `index` (ostree's order) by default.
    pub fn set_default(&self, index: usize) -> Result<()> {
        let Some(e) = self.entries.get(index) else {
            return err(format!("no BLS entry {index} (there are {})", self.entries.len()));
        };
        let conf = self.esp_tree.join("loader/loader.conf");
        io(std::fs::write(&conf, loader_conf(&e.default_pattern())), "write", &conf)?;
        run(self.mtools("mcopy").args(["-o", "-Q"]).arg(&conf).arg("::/loader/loader.conf"))?;
        Ok(())
    }

    /// The names in the ESP's `loader/entries/` as the image holds them
    /// (systemd-boot renames them as it counts), sorted.
    pub fn esp_entry_names(&self) -> Result<Vec<String>> {
        let out = run(self.mtools("mdir").args(["-b", "::/loader/entries"]))?;
        let mut names: Vec<String> = out
            .lines()
            .filter_map(|l| l.trim().rsplit('/').next())
            .filter(|n| n.ends_with(".conf"))
            .map(String::from)
            .collect();
        names.sort();
        Ok(names)
    }

    /// A file of the ESP as the image holds it (`mtype`), e.g. `loader/loader.conf`.
    pub fn read_esp_file(&self, path: &str) -> Result<String> {
        run(self.mtools("mtype").arg(format!("::/{}", path.trim_start_matches('/'))))
    }
}

/// Put the ESP's files under `tree`: `EFI/BOOT/BOOTX64.EFI` or
/// `BOOTAA64.EFI` (the removable media path, which the firmware boots with
/// no NVRAM boot entry),
/// `loader/loader.conf`, `loader/entries/*.conf`, and the files the entries
/// name, copied from `boot` (the sysroot's /boot).
fn stage_esp(
    boot: &Path,
    entries: &[EntryFile],
    default: Option<&EntryFile>,
    tree: &Path,
    arch: Arch,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(tree);
    let efi_boot = tree.join("EFI/BOOT");
    let entries_dir = tree.join("loader/entries");
    for d in [&efi_boot, &entries_dir] {
        io(std::fs::create_dir_all(d), "create", d)?;
    }
    let (systemd_boot, name) = arch.systemd_boot()?;
    let removable = efi_boot.join(name);
    io(std::fs::copy(&systemd_boot, &removable), "copy systemd-boot to", &removable)?;
    let conf = tree.join("loader/loader.conf");
    let text = match default {
        Some(e) => loader_conf(&e.default_pattern()),
        None => loader_conf_no_default(),
    };
    io(std::fs::write(&conf, text), "write", &conf)?;
    for e in entries {
        let path = entries_dir.join(&e.file);
        io(std::fs::write(&path, esp_entry_text(&e.text, arch.console_args())), "write", &path)?;
        for rel in std::iter::once(&e.entry.linux).chain(e.entry.initrd.as_ref()) {
            let rel = rel.trim_start_matches('/');
            if rel.is_empty() || rel.split('/').any(|c| c == "..") {
                return err(format!("BLS entry {} names a bad path {rel:?}", e.file));
            }
            let (from, to) = (boot.join(rel), tree.join(rel));
            if to.exists() {
                continue; // deployments with the same kernel share /boot/ostree/$os-$bootcsum
            }
            if let Some(parent) = to.parent() {
                io(std::fs::create_dir_all(parent), "create", parent)?;
            }
            io(std::fs::copy(&from, &to), &format!("copy to {}:", to.display()), &from)?;
        }
    }
    Ok(())
}

/// loader.conf without `default`: systemd-boot boots the first entry of its
/// own order (newest first; an entry with no tries left last).
pub fn loader_conf_no_default() -> String {
    "# written by rootstock's QEMU harness (qemu-tests/src/uefi.rs)\n\
     timeout 0\neditor no\nauto-entries no\nauto-firmware no\n"
        .into()
}

/// A [`Scenario`] whose disk boots through OVMF and systemd-boot: the
/// deployments carry rootstock's initramfs (unless `os.initramfs` names
/// another), so the entries ostree wrote boot through it.
pub struct UefiScenario {
    pub scenario: Scenario,
    pub disk: UefiDisk,
    /// The initramfs every deployment carries.
    pub initramfs: PathBuf,
}

impl UefiScenario {
    pub fn new(name: &str, os: &TestOs) -> Result<UefiScenario> {
        let kernel = debian_kernel_for(os.arch)?;
        let initramfs = match &os.initramfs {
            Some(i) => i.clone(),
            None => crate::rootstock::rootstock_initramfs(&kernel, "qemu")?,
        };
        let os = TestOs { initramfs: Some(initramfs.clone()), ..os.clone() };
        let work = cache_dir().join("work").join(name);
        let _ = std::fs::remove_dir_all(&work);
        io(std::fs::create_dir_all(&work), "create", &work)?;
        // ostree copies usr/lib/modules/$kver/initramfs.img to /boot/ostree/.
        let sysroot = build_sysroot(&kernel, &os)?;
        let image = work.join("disk.raw");
        let disk = UefiDisk::build(&sysroot, &image, &work.join("esp"), kernel.arch)?;
        let entries = disk.entries.iter().map(|e| e.entry.clone()).collect();
        let scenario = Scenario::from_parts(name, work, kernel, entries, image);
        Ok(UefiScenario { scenario, disk, initramfs })
    }

    /// The next boot: OVMF with a fresh copy of its variable store (no
    /// NVRAM boot entries: the firmware finds `EFI/BOOT/BOOTX64.EFI`).
    pub fn qemu(&self) -> Result<QemuBoot> {
        let base = self.scenario.qemu(None, "");
        let (code, vars_template) = self.scenario.kernel.arch.firmware();
        let vars = base.log.with_extension("uefi-vars.fd");
        io(std::fs::copy(vars_template, &vars), "copy the firmware's variable store to", &vars)?;
        let firmware = Pflash { code: code.into(), vars };
        let q = QemuBoot::uefi(firmware, &self.scenario.image, &base.log);
        Ok(QemuBoot { arch: self.scenario.kernel.arch, snapshot: self.scenario.snapshot, ..q })
    }

    /// Boot with systemd-boot's current default (see [`UefiDisk::set_default`]);
    /// prints the UEFI phases next to the harness's timings.
    pub fn boot(&self) -> Result<Booted> {
        let booted = self.scenario.run(&self.qemu()?)?;
        eprintln!("[{}] {}", self.scenario.name, UefiTimings::from_console(&booted.console));
        Ok(booted)
    }
}

/// The phases of a UEFI boot, in seconds since QEMU started (host clock).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UefiTimings {
    /// OVMF's "BdsDxe: starting Boot..." : the firmware starts the
    /// bootloader (EFI/BOOT/BOOTX64.EFI).
    pub firmware_starts_loader: Option<f64>,
    /// The kernel EFI stub's first "EFI stub:" line: systemd-boot has
    /// loaded the kernel and started it.
    pub efi_stub: Option<f64>,
    /// The harness's timings (kernel start estimated from "Run /init").
    pub boot: Timings,
}

impl UefiTimings {
    pub fn from_console(console: &Console) -> UefiTimings {
        let at = |needle: &str| console.find(needle).map(|l| l.at.as_secs_f64());
        UefiTimings {
            firmware_starts_loader: at("BdsDxe: starting"),
            efi_stub: at("EFI stub:"),
            boot: console.timings(),
        }
    }
}

impl fmt::Display for UefiTimings {
    /// Each point on the host clock since QEMU's start, with the phase
    /// that ended there in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let points = [
            ("firmware starts systemd-boot", self.firmware_starts_loader),
            ("kernel EFI stub", self.efi_stub),
            ("kernel clock 0", self.boot.qemu_to_kernel),
            ("Run /init", self.boot.qemu_to_run_init),
            ("report", self.boot.qemu_to_report),
        ];
        f.write_str("UEFI boot, host clock from QEMU start:")?;
        let mut last = Some(0.0);
        for (i, (what, at)) in points.into_iter().enumerate() {
            let sep = if i == 0 { " " } else { " → " };
            match (at, last) {
                (Some(t), Some(l)) => write!(f, "{sep}{what} {t:.2} s (+{:.2})", t - l)?,
                (Some(t), None) => write!(f, "{sep}{what} {t:.2} s")?,
                (None, _) => write!(f, "{sep}{what} ?")?,
            }
            last = at;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = "title TestOS 2 (ostree:0)\nversion 2\n\
        options root=LABEL=testroot rw ostree=/ostree/boot.1/testos/ab/0\n\
        linux /ostree/testos-ab/vmlinuz-6.1.0-56-amd64\n\
        initrd /ostree/testos-ab/initramfs-6.1.0-56-amd64.img\n";

    #[test]
    fn esp_entries_get_the_console_in_front_of_the_options() {
        let t = esp_entry_text(ENTRY, crate::CONSOLE_ARGS);
        assert!(
            t.contains("\noptions console=ttyS0 printk.time=1 root=LABEL=testroot rw ostree=/ostree/boot.1/"),
            "{t}"
        );
        assert_eq!(t.lines().count(), ENTRY.lines().count());
        let e = parse_entry(&t).unwrap();
        assert_eq!(e.linux, "/ostree/testos-ab/vmlinuz-6.1.0-56-amd64");
        assert_eq!(e.ostree_arg(), Some("/ostree/boot.1/testos/ab/0"));
    }

    #[test]
    fn loader_conf_boots_the_chosen_entry_without_a_menu() {
        let e = EntryFile {
            file: "ostree-1-testos.conf".into(),
            text: ENTRY.into(),
            entry: parse_entry(ENTRY).unwrap(),
        };
        assert_eq!(e.default_pattern(), "ostree-1-testos*");
        let c = loader_conf(&e.default_pattern());
        assert!(c.lines().any(|l| l == "timeout 0"), "{c}");
        assert!(c.lines().any(|l| l == "default ostree-1-testos*"), "{c}");
    }

    #[test]
    fn uefi_timings_show_each_phase() {
        let t = UefiTimings {
            firmware_starts_loader: Some(3.75),
            efi_stub: Some(6.8),
            boot: Timings {
                qemu_to_kernel: Some(6.9),
                qemu_to_run_init: Some(9.0),
                qemu_to_report: None,
                ..Timings::default()
            },
        };
        assert_eq!(
            t.to_string(),
            "UEFI boot, host clock from QEMU start: firmware starts systemd-boot 3.75 s (+3.75) → \
             kernel EFI stub 6.80 s (+3.05) → kernel clock 0 6.90 s (+0.10) → Run /init 9.00 s (+2.10) → \
             report ?"
        );
    }
}
