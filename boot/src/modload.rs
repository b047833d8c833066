//! Loading kernel modules at boot (PID-1 mode), root first.
//!
//! Devices are found from the `MODALIAS=` line of each device's `uevent`
//! under `/sys/devices` (some buses, such as mmc, have no `modalias`
//! file), matched against the index `mkinitramfs` wrote, and queued. PID 1
//! ([`crate::pid1`]) then loads the drivers of one queued device at a time,
//! in the order [`rank::pick`] gives (storage first, then the way already
//! taken, then the cheapest), looks for the root after each, and
//! [stops](ModuleLoader::stop) as soon as the root is there: the booted
//! system's udev loads the rest. Modules load dependencies first, each
//! once, with `finit_module` through the seam.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rootstock_core::errno::Errno;
use rootstock_core::modules::rank::{self, Rank, Waiting};
use rootstock_core::modules::{self, INDEX_FILE, Index};
use rootstock_core::seam::{Op, System};

/// A device the kernel announced, with the modalias its drivers match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Device {
    /// Its sysfs directory.
    pub path: PathBuf,
    pub modalias: String,
}

/// A device waiting for its drivers.
#[derive(Debug, Clone)]
struct Queued {
    device: Device,
    /// The modules whose alias matches (without dependencies).
    drivers: Vec<String>,
    rank: Rank,
}

pub struct ModuleLoader {
    dir: PathBuf,
    index: Option<Index>,
    /// When PID 1 started: log lines give milliseconds since.
    started: Instant,
    /// Devices already looked at.
    seen: BTreeSet<Device>,
    queue: Vec<Queued>,
    /// The devices whose drivers were loaded, in order.
    done: Vec<String>,
    /// Modules already tried (loaded or failed), by normalised name.
    tried: BTreeSet<String>,
    loaded: Vec<String>,
}

impl ModuleLoader {
    /// The modules of `dir` (`/lib/modules/$kver`) as indexed by mkinitramfs.
    /// Without an index there is nothing to load: every driver is built in.
    /// `started`: when PID 1 started, for the log.
    pub fn open(dir: &Path, started: Instant) -> ModuleLoader {
        let index = match std::fs::read_to_string(dir.join(INDEX_FILE)) {
            Ok(text) => match Index::parse(&text) {
                Ok(i) => Some(i),
                Err(e) => {
                    log::error!("{}: {e}; loading no modules", dir.join(INDEX_FILE).display());
                    None
                }
            },
            Err(e) => {
                log::info!("no module index {}: {e}", dir.join(INDEX_FILE).display());
                None
            }
        };
        ModuleLoader {
            dir: dir.to_path_buf(),
            index,
            started,
            seen: BTreeSet::new(),
            queue: Vec::new(),
            done: Vec::new(),
            tried: BTreeSet::new(),
            loaded: vec![],
        }
    }

    /// Modules loaded so far, in order.
    pub fn loaded(&self) -> &[String] {
        &self.loaded
    }

    fn ms(&self) -> u128 {
        self.started.elapsed().as_millis()
    }

    /// Look at every device under `sys_devices` (normally `/sys/devices`):
    /// each one not seen before whose modalias matches a module not tried
    /// yet is queued. Returns how many were queued.
    pub fn discover(&mut self, sys_devices: &Path) -> usize {
        if self.index.is_none() {
            return 0;
        }
        let found = discover_devices(sys_devices);
        self.consider(found)
    }

    /// [`Self::discover`] below the devices whose drivers were loaded only:
    /// where the devices they bring appear (a controller's disks, a bus's
    /// devices). Cheaper than walking all of `/sys/devices` after each load.
    pub fn discover_below_done(&mut self) -> usize {
        if self.index.is_none() {
            return 0;
        }
        let mut found = Vec::new();
        for (i, d) in self.done.iter().enumerate() {
            let (before, after) = (&self.done[..i], &self.done[i + 1..]);
            // Each subtree once: not below another one walked.
            if !rank::below_any(d, before) && !rank::below_any(d, after) {
                found.extend(discover_devices(Path::new(d)));
            }
        }
        self.consider(found)
    }

    fn consider(&mut self, found: Vec<Device>) -> usize {
        let Some(index) = &self.index else { return 0 };
        let mut queued = 0;
        for device in found {
            if self.seen.contains(&device) {
                continue;
            }
            let drivers = index.drivers_for(&device.modalias);
            let todo = index.order(&drivers).iter().any(|m| !self.tried.contains(m));
            if todo {
                let rank = drivers
                    .iter()
                    .filter_map(|d| index.get(d))
                    .map(|e| rank::rank_of_path(&e.path))
                    .min()
                    .unwrap_or(Rank::Other);
                self.queue.push(Queued { device: device.clone(), drivers, rank });
                queued += 1;
            }
            self.seen.insert(device);
        }
        queued
    }

    /// Devices waiting for their drivers.
    pub fn waiting(&self) -> usize {
        self.queue.len()
    }

    /// The modules of `q` still to try, in load order.
    fn todo(&self, q: &Queued) -> Vec<String> {
        let Some(index) = &self.index else { return Vec::new() };
        index.order(&q.drivers).into_iter().filter(|m| !self.tried.contains(m)).collect()
    }

    /// Bytes of module files in `names`.
    fn cost(&self, names: &[String]) -> u64 {
        let Some(index) = &self.index else { return 0 };
        names
            .iter()
            .filter_map(|n| index.get(n))
            .map(|e| std::fs::metadata(self.dir.join(&e.path)).map_or(0, |m| m.len()))
            .sum()
    }

    /// Forget queued devices whose modules were all tried meanwhile (for
    /// another device); the index of the one to load next.
    fn next(&mut self) -> Option<usize> {
        let todo: Vec<Vec<String>> = self.queue.iter().map(|q| self.todo(q)).collect();
        let mut keep = todo.iter().map(|t| !t.is_empty());
        self.queue.retain(|_| keep.next().unwrap_or(false));
        let todo: Vec<&Vec<String>> = todo.iter().filter(|t| !t.is_empty()).collect();
        let paths: Vec<String> = self.queue.iter().map(|q| q.device.path.display().to_string()).collect();
        let waiting: Vec<Waiting> = self
            .queue
            .iter()
            .zip(&todo)
            .zip(&paths)
            .map(|((q, t), path)| Waiting { path, rank: q.rank, cost: self.cost(t) })
            .collect();
        rank::pick(&waiting, &self.done)
    }

    /// Is the device to load next below one whose drivers were loaded
    /// already (on the way being taken, so no reason to wait)?
    pub fn next_is_below_done(&mut self) -> bool {
        match self.next() {
            Some(i) => rank::below_any(&self.queue[i].device.path.display().to_string(), &self.done),
            None => false,
        }
    }

    /// Load the drivers (and their dependencies) of the device that comes
    /// next. Returns the device, or None when none is waiting.
    pub fn load_next(&mut self, sys: &mut dyn System) -> Option<Device> {
        let i = self.next()?;
        let q = self.queue.remove(i);
        let todo = self.todo(&q);
        log::debug!(
            "{} ms: {} ({}): {} driver {}",
            self.ms(),
            q.device.path.display(),
            q.device.modalias,
            q.rank.name(),
            q.drivers.join(" ")
        );
        self.done.push(q.device.path.display().to_string());
        self.load_all(sys, todo, Some(&q.device));
        // The same modules drive the other devices waiting for them (one
        // driver, many instances: the 32 virtio-mmio slots of QEMU's arm64
        // board, a second controller of a kind): they count as loaded too,
        // so that what appears below them is found by
        // [`Self::discover_below_done`], not only by the next full walk.
        let waiting = std::mem::take(&mut self.queue);
        let (driven, waiting): (Vec<Queued>, Vec<Queued>) =
            waiting.into_iter().partition(|w| self.todo(w).is_empty());
        self.queue = waiting;
        for d in driven {
            log::debug!("{} ms: {} driven by the same modules", self.ms(), d.device.path.display());
            self.done.push(d.device.path.display().to_string());
        }
        Some(q.device)
    }

    /// Stop loading drivers for devices: log why and which devices are left
    /// for the booted system's udev.
    pub fn stop(&mut self, why: &str) {
        let left = std::mem::take(&mut self.queue);
        log::info!(
            "module loading stopped after {} ms: {why}; {} modules loaded, {} devices left to the booted system",
            self.ms(),
            self.loaded.len(),
            left.len()
        );
        for q in left {
            log::debug!(
                "not loading {} for {} ({})",
                q.drivers.join(" "),
                q.device.modalias,
                q.device.path.display()
            );
        }
    }

    /// Load a module (and its dependencies) by name or `fs-` alias, e.g. the
    /// root filesystem's type. Built-in or absent from the index is no error.
    pub fn load_named(&mut self, sys: &mut dyn System, name: &str) -> usize {
        let Some(index) = &self.index else { return 0 };
        let wanted = modules::modules_named(&[name], index);
        self.load_all(sys, wanted, None)
    }

    fn load_all(&mut self, sys: &mut dyn System, names: Vec<String>, device: Option<&Device>) -> usize {
        let why = match device {
            Some(d) => format!("for {} ({})", d.modalias, d.path.display()),
            None => "by name".to_string(),
        };
        let mut n = 0;
        for name in names {
            if !self.tried.insert(modules::normalize(&name)) {
                continue;
            }
            let Some(entry) = self.index.as_ref().and_then(|i| i.get(&name)) else { continue };
            let path = self.dir.join(&entry.path);
            let compressed = path.extension().is_some_and(|e| e == "xz" || e == "zst" || e == "gz");
            match sys.execute(&Op::LoadModule { path: path.clone(), compressed }) {
                Ok(()) => {
                    log::debug!("{} ms: loaded {name} {why}", self.ms());
                    self.loaded.push(name);
                    n += 1;
                }
                // EEXIST: already loaded (or built in under that name).
                Err(Errno::EXIST) => {}
                // ENODEV: nothing here for it to drive, e.g. crc32c_intel on a
                // CPU without SSE4.2 (QEMU's TCG): the generic module it stands
                // beside does the job. Normal: one debug line.
                Err(errno @ Errno::NODEV) => {
                    log::debug!("{} ms: not loading {name} {why}: {errno}: no hardware for it", self.ms())
                }
                Err(errno) => log::warn!("could not load {name} ({}) {why}: {errno}", path.display()),
            }
        }
        n
    }
}

/// Every device at or below `dir` whose `uevent` has a `MODALIAS=` line,
/// sorted by path, without following symlinks (sysfs's `/sys/devices` is a
/// tree; its symlinks point across it). `virtual` right below `dir` is
/// passed over: `/sys/devices/virtual` holds devices without a bus, with
/// nothing to load for them.
pub fn discover_devices(dir: &Path) -> Vec<Device> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if d == dir && e.file_name() == "virtual" {
                    continue;
                }
                todo.push(e.path());
            } else if ft.is_file()
                && e.file_name() == "uevent"
                && let Ok(text) = std::fs::read_to_string(e.path())
                && let Some(alias) = text.lines().find_map(|l| l.strip_prefix("MODALIAS="))
                && !alias.trim().is_empty()
            {
                found.push(Device { path: d.clone(), modalias: alias.trim().to_string() });
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rootstock_core::seam::fake::{Call, Recorder};
    use rootstock_core::testutil::TempDir;

    /// A device directory under `devices` with a `uevent` holding `modalias`.
    fn device(devices: &Path, rel: &str, modalias: &str) -> PathBuf {
        let d = devices.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("uevent"), format!("DRIVER=x\nMODALIAS={modalias}\nOTHER=y\n")).unwrap();
        d
    }

    #[test]
    fn devices_come_from_uevent_without_following_symlinks() {
        let t = TempDir::new();
        let d = t.path();
        let pci = device(d, "pci0000:00/0000:00:04.0", "pci:v00001AF4d00001001");
        let virtio = device(d, "pci0000:00/0000:00:04.0/virtio1", "virtio:d00000002v00001AF4");
        // mmc has no modalias file, only the uevent line.
        let mmc = device(d, "pci0000:00/0000:00:0a.0/mmc_host/mmc0/mmc0:4567", "mmc:block");
        // A modalias file alone is not read; a uevent without MODALIAS is no device.
        std::fs::create_dir_all(d.join("platform/x")).unwrap();
        std::fs::write(d.join("platform/x/modalias"), "platform:x\n").unwrap();
        std::fs::write(d.join("platform/x/uevent"), "DRIVER=x\nMODALIAS=\n").unwrap();
        std::os::unix::fs::symlink("../..", virtio.join("loop")).unwrap();
        device(d, "virtual/dmi/id", "dmi:bvnSeaBIOS:");
        let got = discover_devices(d);
        let want = [
            Device { path: pci, modalias: "pci:v00001AF4d00001001".into() },
            Device { path: virtio, modalias: "virtio:d00000002v00001AF4".into() },
            Device { path: mmc, modalias: "mmc:block".into() },
        ];
        let mut want = want.to_vec();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn without_an_index_nothing_is_loaded() {
        let t = TempDir::new();
        device(t.path(), "virtio1", "virtio:d00000002v00001AF4");
        let mut l = ModuleLoader::open(t.path(), Instant::now());
        let mut r = Recorder::new();
        assert_eq!(l.load_named(&mut r, "ext4"), 0);
        assert_eq!(l.discover(t.path()), 0);
        assert_eq!(l.load_next(&mut r), None);
        assert!(l.loaded().is_empty());
        assert!(r.calls.is_empty());
    }

    /// An index of three modules: a virtio disk driver, ext4 (`fs-ext4`)
    /// and crc16, which ext4 needs.
    pub(crate) fn index(kver: &str) -> String {
        let ext = ".ko";
        format!(
            "rootstock-modules 1 {kver}\n\
             crc16\tkernel/lib/crc16{ext}\t\t\t\t\n\
             ext4\tkernel/fs/ext4/ext4{ext}\tcrc16\t\t\tfs-ext4\n\
             virtio_blk\tkernel/drivers/block/virtio_blk{ext}\t\t\t\tvirtio:d00000002v*\n"
        )
    }

    #[test]
    fn modules_load_dependencies_first_once_each_failures_go_on() {
        let t = TempDir::new();
        let dir = t.path().join("lib/modules/6.1.0-t");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(INDEX_FILE), index("6.1.0-t")).unwrap();
        let devices = t.path().join("devices");
        device(&devices, "virtio1", "virtio:d00000002v00001AF4");
        device(&devices, "virtio2", "virtio:d00000002v00001AF4");
        let load = |m: &str| Op::LoadModule { path: dir.join(m), compressed: false };

        // crc16 is refused (EIO), virtio_blk and ext4 load, each once.
        let mut r = Recorder::failing_on(
            |c| matches!(c, Call::Op(Op::LoadModule { path, .. }) if path.ends_with("crc16.ko")),
            Errno::IO,
        );
        let mut l = ModuleLoader::open(&dir, Instant::now());
        assert_eq!(l.discover(&devices), 2);
        assert_eq!(l.discover(&devices), 0, "a device seen is not looked at again");
        assert_eq!(l.load_next(&mut r).map(|d| d.path), Some(devices.join("virtio1")));
        // The second disk needs nothing more: forgotten.
        assert_eq!(l.load_next(&mut r), None);
        assert_eq!(l.waiting(), 0);
        assert_eq!(l.load_named(&mut r, "ext4"), 1);
        assert_eq!(l.load_named(&mut r, "fs-ext4"), 0, "tried once, by any name");
        assert_eq!(l.loaded(), ["virtio_blk", "ext4"]);
        let ops: Vec<Op> = r.operations().cloned().collect();
        assert_eq!(
            ops,
            [
                load("kernel/drivers/block/virtio_blk.ko"),
                load("kernel/lib/crc16.ko"),
                load("kernel/fs/ext4/ext4.ko")
            ]
        );
    }

    /// A machine with an AHCI controller (drivers/ata, large), an NVMe
    /// controller (small), a USB controller with a stick and a keyboard, and
    /// an SD card: the modules are files of the given sizes.
    fn machine(t: &TempDir) -> (PathBuf, PathBuf) {
        let dir = t.path().join("modules");
        let modules: &[(&str, &str, usize, &str, &str)] = &[
            ("scsi_mod", "kernel/drivers/scsi/scsi_mod.ko", 400, "", ""),
            ("sd_mod", "kernel/drivers/scsi/sd_mod.ko", 100, "scsi_mod", "scsi:t-0x00*"),
            ("libata", "kernel/drivers/ata/libata.ko", 800, "scsi_mod", ""),
            ("ahci", "kernel/drivers/ata/ahci.ko", 100, "libata", "pci:v*d*sv*sd*bc01sc06i01*"),
            ("nvme", "kernel/drivers/nvme/host/nvme.ko", 300, "", "pci:v*d*sv*sd*bc01sc08i02*"),
            ("usbcore", "kernel/drivers/usb/core/usbcore.ko", 300, "", ""),
            ("xhci_pci", "kernel/drivers/usb/host/xhci-pci.ko", 200, "usbcore", "pci:v*d*sv*sd*bc0Csc03i30*"),
            (
                "usb_storage",
                "kernel/drivers/usb/storage/usb-storage.ko",
                150,
                "usbcore,scsi_mod",
                "usb:v*p*d*dc*dsc*dp*ic08isc06ip50in*",
            ),
            (
                "usbhid",
                "kernel/drivers/hid/usbhid/usbhid.ko",
                50,
                "usbcore",
                "usb:v*p*d*dc*dsc*dp*ic03isc*ip*in*",
            ),
            ("mmc_core", "kernel/drivers/mmc/core/mmc_core.ko", 200, "", ""),
            ("mmc_block", "kernel/drivers/mmc/core/mmc_block.ko", 80, "mmc_core", "mmc:block"),
        ];
        let mut text = "rootstock-modules 1 k\n".to_string();
        for (name, path, size, deps, alias) in modules {
            text.push_str(&format!("{name}\t{path}\t{deps}\t\t\t{alias}\n"));
            std::fs::create_dir_all(dir.join(path).parent().unwrap()).unwrap();
            std::fs::write(dir.join(path), vec![0u8; *size]).unwrap();
        }
        std::fs::write(dir.join(INDEX_FILE), text).unwrap();
        let devices = t.path().join("devices");
        let pci = "pci0000:00";
        device(
            &devices,
            &format!("{pci}/0000:00:1f.2"),
            "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
        );
        device(
            &devices,
            &format!("{pci}/0000:00:03.0"),
            "pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02",
        );
        device(
            &devices,
            &format!("{pci}/0000:00:05.0"),
            "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30",
        );
        device(
            &devices,
            &format!("{pci}/0000:00:01.0"),
            "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00",
        );
        (dir, devices)
    }

    fn names(r: &Recorder) -> Vec<String> {
        r.operations()
            .filter_map(|op| match op {
                Op::LoadModule { path, .. } => Some(modules::normalize(&path.file_stem()?.to_string_lossy())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn storage_first_the_way_taken_next_and_stop_leaves_the_rest() {
        let t = TempDir::new();
        let (dir, devices) = machine(&t);
        let mut l = ModuleLoader::open(&dir, Instant::now());
        let mut r = Recorder::new();
        // The VGA device (01.0) matches nothing: not queued.
        assert_eq!(l.discover(&devices), 3);
        // NVMe (300 bytes to load) before AHCI (1300), both storage; the USB
        // controller (a bus) after them.
        let next = |l: &mut ModuleLoader, r: &mut Recorder| l.load_next(r).map(|d| d.modalias);
        assert!(next(&mut l, &mut r).unwrap().contains("bc01sc08i02"));
        assert_eq!(names(&r), ["nvme"]);
        assert!(!l.next_is_below_done());
        assert!(next(&mut l, &mut r).unwrap().contains("bc01sc06i01"));
        assert_eq!(names(&r), ["nvme", "scsi_mod", "libata", "ahci"]);
        // A disk appears below the AHCI controller: it goes first, and need
        // not wait; the USB controller comes after.
        device(&devices, "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0", "scsi:t-0x00");
        assert_eq!(l.discover(&devices), 1);
        assert!(l.next_is_below_done());
        assert_eq!(next(&mut l, &mut r).as_deref(), Some("scsi:t-0x00"));
        assert!(next(&mut l, &mut r).unwrap().contains("bc0Csc03i30"));
        // Below the USB controller: a keyboard and a stick; the stick first.
        // They are found by looking below the devices loaded so far.
        let usb = "pci0000:00/0000:00:05.0/usb3";
        device(&devices, &format!("{usb}/3-1/3-1:1.0"), "usb:v0627p0001d0000dc00dsc00dp00ic03isc01ip01in00");
        device(&devices, &format!("{usb}/3-2/3-2:1.0"), "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00");
        device(&devices, "pci0000:00/0000:00:0a.0/mmc_host/mmc0/mmc0:0001", "mmc:block");
        assert_eq!(l.discover_below_done(), 2);
        assert_eq!(l.discover(&devices), 1, "the device elsewhere, on a full look");
        assert!(next(&mut l, &mut r).unwrap().contains("ic08isc06ip50"));
        assert_eq!(
            names(&r),
            ["nvme", "scsi_mod", "libata", "ahci", "sd_mod", "usbcore", "xhci_pci", "usb_storage"]
        );
        // The root is there: the keyboard and the card are left to the
        // booted system.
        assert_eq!(l.waiting(), 2);
        l.stop("the root device is there");
        assert_eq!(l.waiting(), 0);
        assert_eq!(l.load_next(&mut r), None);
        assert!(!names(&r).contains(&"usbhid".to_string()));
    }

    /// One driver for many devices (QEMU's arm64 board: 32 virtio-mmio
    /// slots, the disk in the last): the disk appears below another slot
    /// than the one the driver was loaded for, and is found by looking
    /// below the devices loaded, without a full walk.
    #[test]
    fn devices_below_every_instance_the_driver_took_are_found() {
        let t = TempDir::new();
        let dir = t.path().join("modules");
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        std::fs::write(
            dir.join(INDEX_FILE),
            "rootstock-modules 1 k\n\
             virtio_mmio\tkernel/virtio_mmio.ko\t\t\t\tof:N*T*Cvirtio,mmio*\n\
             virtio_blk\tkernel/virtio_blk.ko\t\t\t\tvirtio:d00000002v*\n",
        )
        .unwrap();
        for m in ["virtio_mmio", "virtio_blk"] {
            std::fs::write(dir.join(format!("kernel/{m}.ko")), b"m").unwrap();
        }
        let devices = t.path().join("devices");
        for slot in ["a000000", "a000200", "a003e00"] {
            device(&devices, &format!("platform/{slot}.virtio_mmio"), "of:Nvirtio_mmioT(null)Cvirtio,mmio");
        }
        let mut l = ModuleLoader::open(&dir, Instant::now());
        let mut r = Recorder::new();
        assert_eq!(l.discover(&devices), 3);
        let first = l.load_next(&mut r).unwrap();
        assert!(first.path.ends_with("platform/a000000.virtio_mmio"), "{first:?}");
        assert_eq!(l.waiting(), 0, "the other slots need nothing more");
        // The disk appears in the last slot once the driver probed it.
        device(&devices, "platform/a003e00.virtio_mmio/virtio0", "virtio:d00000002v554D4551");
        assert_eq!(l.discover_below_done(), 1);
        assert_eq!(l.load_next(&mut r).map(|d| d.modalias).as_deref(), Some("virtio:d00000002v554D4551"));
        assert_eq!(names(&r), ["virtio_mmio", "virtio_blk"]);
    }

    #[test]
    fn an_sd_card_is_found_from_its_uevent() {
        let t = TempDir::new();
        let (dir, devices) = machine(&t);
        device(&devices, "pci0000:00/0000:00:0a.0/mmc_host/mmc0/mmc0:4567", "mmc:block");
        let mut l = ModuleLoader::open(&dir, Instant::now());
        let mut r = Recorder::new();
        assert_eq!(l.discover(&devices), 4);
        // The card's modules are the cheapest storage: first.
        assert_eq!(l.load_next(&mut r).map(|d| d.modalias).as_deref(), Some("mmc:block"));
        assert_eq!(names(&r), ["mmc_core", "mmc_block"]);
    }

    #[test]
    fn enodev_is_no_warning_and_the_next_module_is_tried() {
        let t = TempDir::new();
        let (dir, devices) = machine(&t);
        let mut l = ModuleLoader::open(&dir, Instant::now());
        let mut r = Recorder::failing_on(
            |c| matches!(c, Call::Op(Op::LoadModule { path, .. }) if path.ends_with("nvme.ko")),
            Errno::NODEV,
        );
        l.discover(&devices);
        l.load_next(&mut r);
        l.load_next(&mut r);
        assert_eq!(names(&r), ["nvme", "scsi_mod", "libata", "ahci"]);
        assert_eq!(l.loaded(), ["scsi_mod", "libata", "ahci"]);
    }
}
