//! The disk controllers QEMU emulates, as a dimension of a boot: the same
//! disk image attached as virtio-blk, NVMe, AHCI, IDE, SCSI behind several
//! HBAs, a USB stick (bulk-only or UAS) or an SD card, on the machine type
//! that has that controller. [`Controller::attach`] replaces a
//! [`QemuBoot`]'s virtio disks with it.
//!
//! The image is attached with `snapshot=on` unless asked otherwise: the
//! guest's writes go to a temporary overlay, so one image serves any number
//! of boots, each from the same state.

use crate::qemu::QemuBoot;
use crate::{Kernel, Result, Sysroot, host_binary, run};
use std::fmt;
use std::path::Path;
use std::process::Command;

/// Where the disk sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Controller {
    VirtioBlk,
    Nvme,
    /// q35's built-in ICH9 AHCI controller.
    Ahci,
    /// pc's built-in PIIX3 IDE controller.
    Ide,
    VirtioScsi,
    /// A USB stick (bulk-only transport) on qemu-xhci.
    UsbStorage,
    /// A UAS disk on qemu-xhci.
    Uas,
    /// A USB stick on usb-ehci (USB 2.0).
    UsbEhci,
    /// LSI MegaRAID SAS 2108 (megaraid_sas).
    Megasas,
    /// LSI 53C895A parallel SCSI (sym53c8xx).
    Lsi,
    /// VMware's paravirtual SCSI (vmw_pvscsi).
    Pvscsi,
    /// An SD card on an SDHCI PCI controller (sdhci-pci, mmc_block).
    Sd,
}

impl Controller {
    /// Every controller, in the order the scenarios run them.
    pub const ALL: [Controller; 12] = [
        Controller::VirtioBlk,
        Controller::Nvme,
        Controller::Ahci,
        Controller::Ide,
        Controller::VirtioScsi,
        Controller::UsbStorage,
        Controller::Uas,
        Controller::UsbEhci,
        Controller::Megasas,
        Controller::Lsi,
        Controller::Pvscsi,
        Controller::Sd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Controller::VirtioBlk => "virtio-blk",
            Controller::Nvme => "nvme",
            Controller::Ahci => "ahci",
            Controller::Ide => "ide",
            Controller::VirtioScsi => "virtio-scsi",
            Controller::UsbStorage => "usb-storage",
            Controller::Uas => "usb-uas",
            Controller::UsbEhci => "usb-ehci",
            Controller::Megasas => "megasas-gen2",
            Controller::Lsi => "lsi53c895a",
            Controller::Pvscsi => "pvscsi",
            Controller::Sd => "sdhci-sd",
        }
    }

    /// The machine type: `pc` for PIIX IDE, `q35` for the rest.
    pub fn machine(self) -> &'static str {
        match self {
            Controller::Ide => "pc",
            _ => "q35",
        }
    }

    /// The kernel's name of the disk (the only disk of the machine).
    pub fn disk_name(self) -> &'static str {
        match self {
            Controller::VirtioBlk => "vda",
            Controller::Nvme => "nvme0n1",
            Controller::Sd => "mmcblk0",
            _ => "sda",
        }
    }

    /// The device node of partition `n` of the disk, e.g. `/dev/nvme0n1p2`.
    pub fn partition(self, n: u32) -> String {
        let disk = self.disk_name();
        let p = if disk.ends_with(|c: char| c.is_ascii_digit()) { "p" } else { "" };
        format!("/dev/{disk}{p}{n}")
    }

    /// The QEMU arguments attaching `image` (raw) to this controller, the
    /// machine type included.
    pub fn args(self, image: &Path, snapshot: bool) -> Vec<String> {
        let snap = if snapshot { ",snapshot=on" } else { "" };
        let mut a: Vec<String> = vec![
            "-machine".into(),
            self.machine().into(),
            "-drive".into(),
            format!("file={},format=raw,if=none,id=root{snap}", image.display()),
        ];
        let devices: &[&str] = match self {
            Controller::VirtioBlk => &["virtio-blk-pci,drive=root"],
            Controller::Nvme => &["nvme,serial=rootstock0,drive=root"],
            Controller::Ahci | Controller::Ide => &["ide-hd,drive=root,bus=ide.0"],
            Controller::VirtioScsi => &["virtio-scsi-pci,id=hba", "scsi-hd,drive=root,bus=hba.0"],
            Controller::UsbStorage => &["qemu-xhci,id=usb", "usb-storage,drive=root,bus=usb.0"],
            Controller::Uas => &[
                "qemu-xhci,id=usb",
                "usb-uas,id=uas,bus=usb.0",
                "scsi-hd,drive=root,bus=uas.0,scsi-id=0,lun=0",
            ],
            Controller::UsbEhci => &["usb-ehci,id=usb", "usb-storage,drive=root,bus=usb.0"],
            Controller::Megasas => &["megasas-gen2,id=hba", "scsi-hd,drive=root,bus=hba.0"],
            Controller::Lsi => &["lsi53c895a,id=hba", "scsi-hd,drive=root,bus=hba.0"],
            Controller::Pvscsi => &["pvscsi,id=hba", "scsi-hd,drive=root,bus=hba.0"],
            // An SD card must be a power of 2 in size.
            Controller::Sd => &["sdhci-pci", "sd-card,drive=root"],
        };
        for d in devices {
            a.push("-device".into());
            a.push(d.to_string());
        }
        a
    }

    /// Replace `q`'s disks with `image` on this controller. A UEFI boot
    /// (`q.firmware`) is q35 already; the machine type is not repeated.
    pub fn attach(self, q: &mut QemuBoot, image: &Path, snapshot: bool) {
        q.disks.clear();
        let mut args = self.args(image, snapshot);
        if q.firmware.is_some() {
            args.drain(..2);
        }
        q.extra_args.extend(args);
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The `init=` of a test OS prepared by [`add_hostonly_tools`]: it runs
/// `rootstock mkinitramfs --host` for the machine it runs on, then the test
/// OS's init.
pub const HOSTONLY_INIT: &str = "/usr/libexec/testos-hostonly";
/// Where it writes the image, as seen on the physical root.
pub const HOSTONLY_IMG: &str = "/ostree/deploy/testos/var/hostonly.img";

/// After a boot with `init=`[`HOSTONLY_INIT`] of the disk `disk` (its root
/// filesystem at byte `offset`): the image `mkinitramfs --host` wrote there,
/// copied to `out`. Panics, with the console log's path, when the command
/// did not succeed in the VM.
pub fn take_hostonly_image(b: &crate::Booted, disk: &Path, offset: u64, out: &Path) -> Result<()> {
    let made = b.console.find("testos-hostonly: exit status").map(|l| l.text.clone()).unwrap_or_default();
    assert!(
        made.ends_with("exit status 0"),
        "mkinitramfs --host in the VM: {made:?}; {}",
        b.console.log.display()
    );
    let bytes = crate::read_ext4_file(disk, offset, HOSTONLY_IMG)?;
    crate::util::io(std::fs::write(out, bytes), "write", out)
}

/// Commit and deploy, on top of the test OS, what `rootstock mkinitramfs
/// --host` needs inside it: `kernel`'s modules of the generic set (and its
/// module lists), the boot program of its architecture, and the init= that
/// runs it (with the test OS's own static host tool, of the same
/// architecture).
pub fn add_hostonly_tools(sys: &mut Sysroot, kernel: &Kernel) -> Result<()> {
    let kver = kernel.version.as_str();
    let boot_binary = kernel.arch.boot_binary()?;
    let overlay = sys.dir.join("tmp/overlay-hostonly");
    let _ = std::fs::remove_dir_all(&overlay);
    let modules = overlay.join("usr/lib/modules").join(kver);
    std::fs::create_dir_all(&modules)?;
    // The generic set's modules, as mkinitramfs picks them.
    let plain = overlay.join("generic.cpio");
    run(Command::new(host_binary()?)
        .arg("mkinitramfs")
        .arg("--modules-dir")
        .arg(kernel.root.join("lib/modules"))
        .args(["--kver", kver, "--modules", "generic", "--list-dir"])
        .arg(crate::repo_root().join("initramfs"))
        .args(["--compress", "none", "--firmware-dir", "none", "--binary"])
        .arg(&boot_binary)
        .arg(&plain))?;
    let unpack = overlay.join("unpack");
    std::fs::create_dir_all(&unpack)?;
    let cpio = std::fs::File::open(&plain)?;
    let out = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames", &format!("lib/modules/{kver}/kernel/*")])
        .current_dir(&unpack)
        .stdin(cpio)
        .output()?;
    assert!(out.status.success(), "cpio: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::rename(unpack.join("lib/modules").join(kver).join("kernel"), modules.join("kernel"))?;
    std::fs::remove_dir_all(&unpack)?;
    std::fs::remove_file(&plain)?;
    for f in ["modules.builtin", "modules.builtin.modinfo", "modules.alias"] {
        std::fs::copy(kernel.moddir().join(f), modules.join(f))?;
    }
    // The kernel's config where Fedora and Arch ship it (Debian's
    // /boot/config-KVER is not in the test OS): `mkinitramfs` takes its
    // default compression from it, as on a real machine.
    std::fs::copy(kernel.root.join("boot").join(format!("config-{kver}")), modules.join("config"))?;
    let lib = overlay.join("usr/lib/rootstock");
    std::fs::create_dir_all(&lib)?;
    std::fs::copy(&boot_binary, lib.join("rootstock-boot"))?;
    let libexec = overlay.join("usr/libexec");
    std::fs::create_dir_all(&libexec)?;
    let script = libexec.join("testos-hostonly");
    std::fs::write(
        &script,
        "#!/bin/sh\n\
         # init= of the controller scenarios: a host-only image of this machine\n\
         # into /var, then the test OS's init.\n\
         export PATH=/usr/bin:/usr/sbin\n\
         echo \"testos-hostonly: rootstock mkinitramfs --host\"\n\
         rootstock mkinitramfs --host --kver \"$(uname -r)\" --modules-dir /usr/lib/modules \\\n\
         \x20   --binary /usr/lib/rootstock/rootstock-boot --firmware-dir none /var/hostonly.img\n\
         echo \"testos-hostonly: exit status $?\"\n\
         sync\n\
         exec /usr/sbin/init\n",
    )?;
    run(Command::new("chmod").args(["-R", "u=rwX,go=rX"]).arg(&overlay))?;
    run(Command::new("chmod").arg("0755").arg(&script))?;
    sys.commit_tree(&overlay, "testos with rootstock mkinitramfs --host")?;
    std::fs::remove_dir_all(&overlay)?;
    sys.deploy(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_machines_and_partition_names() {
        let img = Path::new("/x/disk.raw");
        assert_eq!(
            Controller::Uas.args(img, true).join(" "),
            "-machine q35 -drive file=/x/disk.raw,format=raw,if=none,id=root,snapshot=on -device qemu-xhci,id=usb \
             -device usb-uas,id=uas,bus=usb.0 -device scsi-hd,drive=root,bus=uas.0,scsi-id=0,lun=0"
        );
        assert_eq!(
            Controller::Ide.args(img, false).join(" "),
            "-machine pc -drive file=/x/disk.raw,format=raw,if=none,id=root -device ide-hd,drive=root,bus=ide.0"
        );
        let parts: Vec<String> = Controller::ALL.iter().map(|c| c.partition(2)).collect();
        assert_eq!(
            parts,
            [
                "/dev/vda2",
                "/dev/nvme0n1p2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/sda2",
                "/dev/mmcblk0p2"
            ]
        );
        let names: std::collections::BTreeSet<&str> = Controller::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Controller::ALL.len());
        let mut q = QemuBoot::new(Path::new("k"), None, "", img, Path::new("l"));
        Controller::Nvme.attach(&mut q, img, true);
        assert!(q.disks.is_empty());
        assert_eq!(q.extra_args[..2], ["-machine", "q35"]);
        let cmd: Vec<String> = q.command().get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert!(!cmd.iter().any(|a| a.contains("if=virtio")), "{cmd:?}");
    }
}
