//! Root first: which device's drivers PID 1 loads next.
//!
//! PID 1 does not know which device holds the root until the device's
//! drivers are loaded and its superblock read, so it orders the devices
//! waiting for drivers by how likely they are to lead to the root and how
//! little loading them costs, loads one device's drivers at a time, and
//! stops as soon as the root appears. The order ([`pick`]):
//!
//! 1. [`Rank`]: devices whose drivers are storage drivers (disk
//!    controllers, disks, the virtio and Hyper-V buses disks sit on), then
//!    buses that may carry a disk (USB host controllers, PCI bridges, card
//!    readers), then the rest (keyboards, consoles, ...);
//! 2. devices below a device whose drivers were loaded before (the way to
//!    the root continues there: the disk of a controller just loaded);
//! 3. the fewest bytes of modules still to load;
//! 4. the sysfs path, for a stable order.
//!
//! The rank comes from where a driver sits in the kernel's tree (its path
//! in the index, e.g. `kernel/drivers/ata/ahci.ko`): no table of device ids
//! to keep up to date, and a storage driver added with `--add-module` is
//! ranked as one.

/// How likely a device's drivers lead to the root device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rank {
    /// Disk controllers and disks, and the buses they sit on.
    Storage,
    /// Buses that may carry a disk: USB, PCI, card readers.
    Bus,
    /// Anything else.
    Other,
}

impl Rank {
    pub fn name(self) -> &'static str {
        match self {
            Rank::Storage => "storage",
            Rank::Bus => "bus",
            Rank::Other => "other",
        }
    }
}

/// Directories of the kernel's tree holding storage drivers.
const STORAGE: [&str; 10] = [
    "drivers/ata/",
    "drivers/block/",
    "drivers/hv/",
    "drivers/md/",
    "drivers/message/fusion/",
    "drivers/mmc/",
    "drivers/nvme/",
    "drivers/scsi/",
    "drivers/usb/storage/",
    "drivers/virtio/",
];

/// Directories of the kernel's tree holding buses a disk may sit on.
const BUS: [&str; 5] =
    ["drivers/usb/", "drivers/pci/", "drivers/mfd/", "drivers/thunderbolt/", "drivers/firewire/"];

/// The rank of a module by its path in the index (`kernel/drivers/...`).
pub fn rank_of_path(path: &str) -> Rank {
    let rel = path.strip_prefix("kernel/").unwrap_or(path);
    if STORAGE.iter().any(|d| rel.starts_with(d)) {
        Rank::Storage
    } else if BUS.iter().any(|d| rel.starts_with(d)) {
        Rank::Bus
    } else {
        Rank::Other
    }
}

/// A device waiting for its drivers, as [`pick`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting<'a> {
    /// Its sysfs directory, e.g. `/sys/devices/pci0000:00/0000:00:1f.2`.
    pub path: &'a str,
    pub rank: Rank,
    /// Bytes of its modules not loaded yet.
    pub cost: u64,
}

/// Is `path` below one of the devices in `loaded`?
pub fn below_any(path: &str, loaded: &[String]) -> bool {
    loaded
        .iter()
        .any(|l| path.len() > l.len() && path.starts_with(l.as_str()) && path[l.len()..].starts_with('/'))
}

/// The index in `waiting` of the device whose drivers to load next: see
/// the module documentation. `loaded`: the devices whose drivers were
/// loaded so far.
pub fn pick(waiting: &[Waiting], loaded: &[String]) -> Option<usize> {
    waiting
        .iter()
        .enumerate()
        .min_by_key(|(_, w)| (w.rank, !below_any(w.path, loaded), w.cost, w.path))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_the_drivers_place_in_the_tree() {
        let cases = [
            ("kernel/drivers/ata/ahci.ko", Rank::Storage),
            ("kernel/drivers/scsi/sd_mod.ko", Rank::Storage),
            ("kernel/drivers/nvme/host/nvme.ko", Rank::Storage),
            ("kernel/drivers/block/virtio_blk.ko", Rank::Storage),
            ("kernel/drivers/block/xen-blkfront.ko", Rank::Storage),
            ("kernel/drivers/virtio/virtio_pci.ko", Rank::Storage),
            ("kernel/drivers/hv/hv_vmbus.ko", Rank::Storage),
            ("kernel/drivers/mmc/core/mmc_block.ko", Rank::Storage),
            ("kernel/drivers/mmc/host/sdhci-pci.ko", Rank::Storage),
            ("kernel/drivers/message/fusion/mptspi.ko", Rank::Storage),
            ("kernel/drivers/usb/storage/uas.ko", Rank::Storage),
            ("kernel/drivers/usb/host/xhci-pci.ko.xz", Rank::Bus),
            ("kernel/drivers/usb/core/usbcore.ko", Rank::Bus),
            ("kernel/drivers/hid/usbhid/usbhid.ko", Rank::Other),
            ("kernel/drivers/char/virtio_console.ko", Rank::Other),
            ("kernel/fs/ext4/ext4.ko", Rank::Other),
            ("drivers/ata/ahci.ko", Rank::Storage),
        ];
        for (path, want) in cases {
            assert_eq!(rank_of_path(path), want, "{path}");
        }
    }

    #[test]
    fn storage_first_then_the_way_already_taken_then_the_cheapest() {
        let w = |path, rank, cost| Waiting { path, rank, cost };
        let ahci = w("/sys/devices/pci0000:00/0000:00:1f.2", Rank::Storage, 1_300_000);
        let nvme = w("/sys/devices/pci0000:00/0000:00:03.0", Rank::Storage, 300_000);
        let xhci = w("/sys/devices/pci0000:00/0000:00:05.0", Rank::Bus, 200_000);
        let kbd = w("/sys/devices/pci0000:00/0000:00:05.0/usb3/3-1/3-1:1.0", Rank::Other, 50_000);
        let stick = w("/sys/devices/pci0000:00/0000:00:05.0/usb3/3-2/3-2:1.0", Rank::Storage, 2_000_000);
        let none: &[String] = &[];
        assert_eq!(pick(&[], none), None);
        assert_eq!(pick(&[ahci.clone(), nvme.clone(), xhci.clone(), kbd.clone()], none), Some(1));
        assert_eq!(pick(&[xhci.clone(), kbd.clone()], none), Some(0));
        // Once the USB controller is loaded, the stick below it comes before
        // a cheaper storage controller elsewhere; the keyboard comes last.
        let loaded = vec![xhci.path.to_string()];
        assert_eq!(pick(&[kbd.clone(), nvme.clone(), stick.clone()], &loaded), Some(2));
        assert_eq!(pick(&[kbd.clone(), nvme.clone()], &loaded), Some(1));
        // Equal: the path decides.
        assert_eq!(pick(&[w("/b", Rank::Other, 1), w("/a", Rank::Other, 1)], none), Some(1));
    }

    #[test]
    fn below_means_a_path_component_below() {
        let loaded = vec!["/sys/devices/pci0000:00/0000:00:05.0".to_string()];
        assert!(below_any("/sys/devices/pci0000:00/0000:00:05.0/usb3", &loaded));
        assert!(!below_any("/sys/devices/pci0000:00/0000:00:05.0", &loaded));
        assert!(!below_any("/sys/devices/pci0000:00/0000:00:05.01", &loaded));
        assert!(!below_any("/sys/devices/pci0000:00", &loaded));
    }
}
