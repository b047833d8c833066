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
use std::fmt;
use std::path::Path;

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
