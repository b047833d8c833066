//! The module sets of `initramfs/` against the real Debian kernel: the
//! index of the generic image selects, for the modaliases real machines
//! announce, the drivers their root disk needs, and ranks them so that PID 1
//! loads them first.
//!
//! The QEMU modaliases were read from the `uevent` files of a Debian 6.1
//! kernel booted under QEMU 7.2 with each controller (q35, and pc for
//! PIIX IDE). Hyper-V and Xen cannot be emulated here: their modaliases are
//! what those buses announce: a vmbus device's is `vmbus:` and the 16 bytes
//! of its class GUID in memory order (storvsc's SCSI controller is
//! ba6163d9-04a1-4d29-b605-72e2ffb1dc7f, the IDE accelerator
//! 32412632-86cb-44a2-9b5c-50d1417354f5), the vmbus itself is the ACPI
//! device `VMBUS:00`; a Xen disk is `xen:vbd` (device `vbd-51712`).

use rootstock_core::modules::modules_for;
use rootstock_core::modules::rank::{Rank, rank_of_path};

use crate::modules::test_support::set_image;

/// A controller: its name, the modaliases on the way from it to its disk,
/// and the drivers the image must select for them.
type Controller = (&'static str, &'static [&'static str], &'static [&'static str]);

const SCSI_DISK: &str = "scsi:t-0x00";

const QEMU: &[Controller] = &[
    (
        "virtio-blk",
        &["pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", "virtio:d00000002v00001AF4"],
        &["virtio_pci", "virtio_blk"],
    ),
    (
        "virtio-scsi",
        &["pci:v00001AF4d00001004sv00001AF4sd00000008bc01sc00i00", "virtio:d00000008v00001AF4", SCSI_DISK],
        &["virtio_pci", "virtio_scsi", "sd_mod"],
    ),
    ("nvme", &["pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"], &["nvme"]),
    (
        "ich9-ahci (q35)",
        &["pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", SCSI_DISK],
        &["ahci", "sd_mod"],
    ),
    (
        "piix3-ide (pc)",
        &["pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80", SCSI_DISK],
        &["ata_piix", "sd_mod"],
    ),
    (
        "usb-storage on qemu-xhci",
        &[
            "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
            "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
            SCSI_DISK,
        ],
        &["xhci_pci", "usb_storage", "sd_mod"],
    ),
    (
        "usb-uas on qemu-xhci",
        &[
            "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
            "usb:v46F4p0003d0000dc00dsc00dp00ic08isc06ip62in00",
            SCSI_DISK,
        ],
        &["xhci_pci", "uas", "sd_mod"],
    ),
    (
        "usb-storage on usb-ehci",
        &[
            "pci:v00008086d000024CDsv00001AF4sd00001100bc0Csc03i20",
            "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00",
            SCSI_DISK,
        ],
        &["ehci_pci", "usb_storage", "sd_mod"],
    ),
    (
        "megasas-gen2",
        &["pci:v00001000d00000079sv00001000sd00009261bc01sc04i00", SCSI_DISK],
        &["megaraid_sas", "sd_mod"],
    ),
    (
        "lsi53c895a",
        &["pci:v00001000d00000012sv00000000sd00001000bc01sc00i00", SCSI_DISK],
        &["sym53c8xx", "sd_mod"],
    ),
    (
        "pvscsi",
        &["pci:v000015ADd000007C0sv000015ADsd000007C0bc01sc00i00", SCSI_DISK],
        &["vmw_pvscsi", "sd_mod"],
    ),
    (
        "mptsas1068",
        &["pci:v00001000d00000054sv00001000sd00008000bc01sc00i00", SCSI_DISK],
        &["mptsas", "sd_mod"],
    ),
    (
        "sd-card on sdhci-pci",
        &["pci:v00001B36d00000007sv00001AF4sd00001100bc08sc05i01", "mmc:block"],
        &["sdhci_pci", "mmc_block"],
    ),
];

const CLOUD: &[Controller] = &[
    (
        "Hyper-V storvsc (SCSI)",
        &["acpi:VMBUS:", "vmbus:d96361baa104294db60572e2ffb1dc7f", SCSI_DISK],
        &["hv_vmbus", "hv_storvsc", "sd_mod"],
    ),
    (
        "Hyper-V storvsc (IDE accelerator)",
        &["acpi:VMBUS:", "vmbus:32264132cb86a2449b5c50d1417354f5", SCSI_DISK],
        &["hv_vmbus", "hv_storvsc", "sd_mod"],
    ),
    ("Xen blkfront", &["xen:vbd"], &["xen_blkfront"]),
    // Cloud and hypervisor disks by their PCI ids (Amazon's EBS NVMe,
    // VMware's LSI Logic Parallel); for NVMe the class alone decides.
    ("EC2 NVMe", &["pci:v00001D0Fd00008061sv00001D0Fsd00008061bc01sc08i02"], &["nvme"]),
    (
        "VMware LSI Logic Parallel",
        &["pci:v00001000d00000030sv000015ADsd00001976bc01sc00i00", SCSI_DISK],
        &["mptspi", "sd_mod"],
    ),
];

#[test]
fn the_generic_index_selects_each_controllers_drivers_and_ranks_them_first() {
    let image = set_image("generic");
    let index = &image.index;
    for (name, modaliases, drivers) in QEMU.iter().chain(CLOUD) {
        let aliases: Vec<String> = modaliases.iter().map(|s| s.to_string()).collect();
        let got = modules_for(&aliases, index);
        for d in *drivers {
            assert!(got.contains(&d.to_string()), "{name}: {d} not selected: {got:?}");
        }
        // Dependencies come first.
        for (i, m) in got.iter().enumerate() {
            for dep in &index.get(m).unwrap().depends {
                assert!(got[..i].contains(dep), "{name}: {m} before {dep}: {got:?}");
            }
        }
        // Each device's drivers rank as storage, or as a bus (a USB host
        // controller) that may lead to it.
        for m in modaliases.iter() {
            let drivers = index.drivers_for(m);
            let every: Vec<String> = index
                .entries()
                .filter(|e| e.aliases.iter().any(|a| rootstock_core::modules::alias_matches(a, m)))
                .map(|e| e.name.clone())
                .collect();
            assert_eq!(
                drivers, every,
                "{name}: {m}: the prefix lookup finds what globbing every alias finds"
            );
            assert!(!drivers.is_empty(), "{name}: nothing for {m}");
            for d in &drivers {
                let rank = rank_of_path(&index.get(d).unwrap().path);
                assert!(rank <= Rank::Bus, "{name}: {d} for {m} ranks {rank:?}");
            }
        }
    }
    // What is not on the way to a disk ranks last.
    for (modalias, driver) in [
        ("usb:v0627p0001d0000dc00dsc00dp00ic03isc01ip01in00", "usbhid"),
        ("virtio:d00000003v00001AF4", "virtio_console"),
    ] {
        assert_eq!(index.drivers_for(modalias), [driver]);
        assert_eq!(rank_of_path(&index.get(driver).unwrap().path), Rank::Other, "{driver}");
    }
    // Every root filesystem.
    for fs in ["ext4", "xfs", "btrfs", "vfat", "erofs"] {
        assert!(index.get(fs).is_some(), "{fs} not in the generic image");
    }
}

#[test]
fn the_qemu_set_is_enough_for_virtio_only() {
    let image = set_image("qemu");
    for (name, modaliases, drivers) in QEMU {
        let aliases: Vec<String> = modaliases.iter().map(|s| s.to_string()).collect();
        let got = modules_for(&aliases, &image.index);
        let all = drivers.iter().all(|d| got.contains(&d.to_string()));
        assert_eq!(all, name.starts_with("virtio"), "{name}: {got:?}");
    }
}
