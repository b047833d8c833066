//! rootstock's generic initramfs (`initramfs/generic.list`) on every disk
//! controller QEMU emulates: the same GPT disk (ESP + ext4 root with a known
//! UUID) attached as virtio-blk, NVMe, AHCI (q35), IDE (pc), virtio-scsi, a
//! USB stick (bulk-only, UAS; xHCI and EHCI), behind a MegaRAID SAS, LSI
//! 53C895A or pvscsi HBA, or as an SD card on SDHCI; booted with
//! `root=UUID=`. Plus OVMF on q35 with the root on NVMe, and a host-only
//! image made inside a VM by `rootstock mkinitramfs --host` booting that VM.
//!
//! The generic image and the disk are made once and shared by every
//! scenario (QEMU attaches the disk with `snapshot=on`). The test OS's
//! default deployment carries the generic image's modules in
//! `/usr/lib/modules/KVER`, the boot program in `/usr/lib/rootstock`, and
//! `/usr/libexec/testos-hostonly`: as `init=`, it runs `rootstock mkinitramfs
//! --host` into `/var/hostonly.img`, then the test OS's init.
//!
//! `ROOTSTOCK_BENCH_CONTROLLERS=N` runs `bench_controllers`: N rounds of
//! every controller with the generic image and a host-only image made on
//! that controller, and the QEMU set on virtio-blk; medians of "Run /init" →
//! switch root and the images' sizes.

use rootstock_qemu_tests::{
    Booted, CONSOLE_ARGS, Controller, DiskSpec, GptSpec, HOSTONLY_INIT, Report, RootstockTimings, Scenario,
    TestOs, UefiScenario, add_hostonly_tools, assert_field, can_run, can_run_uefi, debian_kernel,
    rootstock_initramfs, run, take_hostonly_image,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

const FS_UUID: &str = "5eed7e57-0000-4000-8000-00000000c0de";

struct Shared {
    s: Scenario,
    disk: DiskSpec,
    generic: PathBuf,
}

fn disk_spec() -> DiskSpec {
    let gpt = GptSpec {
        esp_mb: 8,
        partuuid: "c0de0000-0000-4000-8000-000000000002".into(),
        partlabel: "root".into(),
    };
    // 512 MiB: an SD card's size must be a power of 2.
    DiskSpec { uuid: Some(FS_UUID.into()), gpt: Some(gpt), ..DiskSpec::default() }
}

/// The shared disk and generic image, made by the first scenario that runs.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| make_shared("controllers"))
}

/// The disk and a copy of the generic image in `<cache>/work/NAME/`.
fn make_shared(name: &str) -> Shared {
    let t = Instant::now();
    let kernel = debian_kernel().unwrap();
    let generic = rootstock_initramfs(&kernel, "generic").unwrap();
    let disk = disk_spec();
    let os = TestOs { deployments: 2, ..Default::default() };
    let s = Scenario::custom(name, &os, |sys| add_hostonly_tools(sys, &kernel), &disk).unwrap();
    // A copy of its own: the cache keeps one image per kernel and set,
    // and a build from another checkout replaces it.
    let own = s.work.join("generic.img");
    std::fs::copy(&generic, &own).unwrap();
    eprintln!("[{name}] disk and generic image made in {:.1} s", t.elapsed().as_secs_f64());
    Shared { s, disk, generic: own }
}

/// The default entry's options with `root=UUID=` and `extra`.
fn cmdline(s: &Scenario, extra: &str) -> String {
    let words: Vec<String> = s.entries[0]
        .options
        .split_whitespace()
        .map(|w| if w.starts_with("root=") { format!("root=UUID={FS_UUID}") } else { w.to_string() })
        .collect();
    format!("{CONSOLE_ARGS} {} {extra}", words.join(" ")).trim_end().to_string()
}

/// Boot `initrd` with the disk on `c` (writes kept in `image` unless
/// `snapshot`); check that rootstock found the root where the controller
/// puts it and switched root into the default deployment.
fn boot_on(
    sh: &Shared,
    name: &str,
    c: Controller,
    initrd: &Path,
    image: &Path,
    snapshot: bool,
    extra: &str,
) -> Booted {
    let mut q = sh.s.qemu(Some(initrd), &cmdline(&sh.s, extra));
    q.log = sh.s.work.join(format!("{name}-{c}-{}.log", q.log.file_stem().unwrap().to_string_lossy()));
    c.attach(&mut q, image, snapshot);
    let b = sh.s.run(&q).unwrap();
    let t = RootstockTimings::from_console(&b.console);
    eprintln!("[controllers] {name} on {c}: {t}");
    check_booted(&b, &c.partition(2));
    b
}

fn check_booted(b: &Booted, root: &str) {
    let log = b.console.log.display();
    let r: &Report = &b.report;
    assert_field(r, "version", "2");
    assert!(r.get("rootstock_state").unwrap_or("").contains("reason=default"), "{r}");
    assert_field(r, "usr_ro", "yes");
    assert!(
        b.console.find(&format!("rootstock: found root device {root} ")).is_some(),
        "root not {root}; {log}"
    );
    assert!(b.console.find("rootstock: module loading stopped after").is_some(), "{log}");
    assert!(b.console.find("rootstock: switching root").is_some(), "{log}");
    assert!(b.console.find("Kernel panic").is_none(), "{log}");
}

fn generic_on(c: Controller) {
    if !can_run() {
        return;
    }
    let sh = shared();
    boot_on(sh, "generic", c, &sh.generic, &sh.s.image, true, "");
}

#[test]
fn controller_virtio_blk() {
    generic_on(Controller::VirtioBlk);
}

#[test]
fn controller_nvme() {
    generic_on(Controller::Nvme);
}

#[test]
fn controller_ahci_q35() {
    generic_on(Controller::Ahci);
}

#[test]
fn controller_ide_pc() {
    generic_on(Controller::Ide);
}

#[test]
fn controller_virtio_scsi() {
    generic_on(Controller::VirtioScsi);
}

#[test]
fn controller_usb_storage_xhci() {
    generic_on(Controller::UsbStorage);
}

#[test]
fn controller_usb_uas_xhci() {
    generic_on(Controller::Uas);
}

#[test]
fn controller_usb_storage_ehci() {
    generic_on(Controller::UsbEhci);
}

#[test]
fn controller_megasas() {
    generic_on(Controller::Megasas);
}

#[test]
fn controller_lsi53c895a() {
    generic_on(Controller::Lsi);
}

#[test]
fn controller_pvscsi() {
    generic_on(Controller::Pvscsi);
}

#[test]
fn controller_sd_card_sdhci() {
    generic_on(Controller::Sd);
}

/// OVMF on q35, systemd-boot from the ESP of an NVMe disk, the entries
/// carrying the generic image.
#[test]
fn controller_uefi_nvme() {
    if !can_run() || !can_run_uefi() {
        return;
    }
    let kernel = debian_kernel().unwrap();
    let generic = rootstock_initramfs(&kernel, "generic").unwrap();
    let os = TestOs { deployments: 2, initramfs: Some(generic), ..Default::default() };
    let s = UefiScenario::new("controllers-uefi-nvme", &os).unwrap();
    let mut q = s.qemu().unwrap();
    Controller::Nvme.attach(&mut q, &s.scenario.image, true);
    let b = s.scenario.run(&q).unwrap();
    assert_field(&b.report, "version", "2");
    assert!(b.console.find("BdsDxe: starting").is_some(), "not booted by OVMF; {}", b.console.log.display());
    assert!(
        b.console.find("rootstock: found root device /dev/nvme0n1p2 ").is_some(),
        "{}",
        b.console.log.display()
    );
}

/// A private, writable copy of the shared disk.
fn private_disk(sh: &Shared, name: &str) -> PathBuf {
    let copy = sh.s.work.join(format!("{name}.raw"));
    run(Command::new("cp").arg("--sparse=always").arg(&sh.s.image).arg(&copy)).unwrap();
    copy
}

/// Boot the generic image on `c` with the init= that runs `mkinitramfs
/// --host`, and return the image it wrote (in `work`), and the boot.
fn make_hostonly(sh: &Shared, c: Controller, disk: &Path) -> (PathBuf, Booted) {
    let b = boot_on(sh, "hostonly-make", c, &sh.generic, disk, false, &format!("init={HOSTONLY_INIT}"));
    let img = sh.s.work.join(format!("hostonly-{c}.img"));
    take_hostonly_image(&b, disk, sh.disk.root_offset(), &img).unwrap();
    (img, b)
}

/// A host-only image made inside the VM (NVMe on q35) for its own hardware
/// boots it, and is smaller than the QEMU set's image.
#[test]
fn controller_hostonly_image_boots_the_vm_it_was_made_on() {
    if !can_run() {
        return;
    }
    let sh = shared();
    let c = Controller::Nvme;
    let disk = private_disk(sh, "hostonly-nvme");
    let (img, made) = make_hostonly(sh, c, &disk);
    let picks: Vec<&str> = made
        .console
        .texts()
        .skip_while(|l| !l.starts_with("host-only: root device"))
        .take_while(|l| l.starts_with("host-only") || l.starts_with("  "))
        .collect();
    eprintln!("[controllers] mkinitramfs --host in the VM:\n{}", picks.join("\n"));
    assert!(
        picks.iter().any(|l| l.starts_with("  nvme: driver nvme of /sys/devices/pci0000:00/")),
        "{picks:?}"
    );
    assert!(picks.iter().any(|l| l.starts_with("  ext4: the root filesystem's type")), "{picks:?}");
    let b = boot_on(sh, "hostonly", c, &img, &disk, false, "");
    assert!(b.console.find("rootstock: found root device /dev/nvme0n1p2 ").is_some());
    let qemu = rootstock_initramfs(&sh.s.kernel, "qemu").unwrap();
    let (host_size, qemu_size) = (size(&img), size(&qemu));
    eprintln!("[controllers] host-only image {host_size} bytes, QEMU set's {qemu_size} bytes");
    assert!(host_size < qemu_size, "host-only {host_size} bytes, QEMU set {qemu_size} bytes");
    let _ = std::fs::remove_file(&disk);
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// The initramfs phase ("Run /init" → rootstock's "switching root") of a boot.
fn phase(b: &Booted) -> f64 {
    RootstockTimings::from_console(&b.console)
        .initramfs_phase()
        .expect("Run /init and switch root on the console")
}

/// Not a timed test: `ROOTSTOCK_BENCH_CONTROLLERS=N` rounds, each booting
/// every controller with the generic image (making that controller's
/// host-only image in the first round) and with its host-only image, and
/// virtio-blk with the QEMU set; prints the medians and sizes as a table.
#[test]
fn bench_controllers() {
    let Some(n) = std::env::var("ROOTSTOCK_BENCH_CONTROLLERS").ok().and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!("bench_controllers: set ROOTSTOCK_BENCH_CONTROLLERS=N (rounds) to run it");
        return;
    };
    if !can_run() {
        return;
    }
    // A disk of its own: a run of the scenarios (another checkout sharing
    // the cache) may make theirs meanwhile.
    let sh = &make_shared("controllers-bench");
    let qemu = sh.s.work.join("qemu.img");
    std::fs::copy(rootstock_initramfs(&sh.s.kernel, "qemu").unwrap(), &qemu).unwrap();
    let disk = private_disk(sh, "bench");
    let mut hostonly: Vec<Option<PathBuf>> = vec![None; Controller::ALL.len()];
    let mut generic_t: Vec<Vec<f64>> = vec![Vec::new(); Controller::ALL.len()];
    let mut host_t: Vec<Vec<f64>> = vec![Vec::new(); Controller::ALL.len()];
    let mut qemu_t = Vec::new();
    for round in 0..n.max(1) {
        for (i, c) in Controller::ALL.into_iter().enumerate() {
            // The generic image; the first round makes the host-only image too.
            let b = match &hostonly[i] {
                None => {
                    let (img, b) = make_hostonly(sh, c, &disk);
                    hostonly[i] = Some(img);
                    b
                }
                Some(_) => boot_on(sh, "bench-generic", c, &sh.generic, &disk, false, ""),
            };
            generic_t[i].push(phase(&b));
            let b = boot_on(sh, "bench-hostonly", c, hostonly[i].as_ref().unwrap(), &disk, false, "");
            host_t[i].push(phase(&b));
            if c == Controller::VirtioBlk {
                let b = boot_on(sh, "bench-qemu", c, &qemu, &disk, false, "");
                qemu_t.push(phase(&b));
            }
        }
        eprintln!("[bench] round {} of {n} done", round + 1);
    }
    let q = median(&mut qemu_t);
    let mut table = format!(
        "[bench] Run /init → switch root, medians of {n} (kernel clock, TCG); one disk, GPT, ext4\n\
         | controller | generic | host-only | host-only image |\n|---|---|---|---|\n"
    );
    for (i, c) in Controller::ALL.into_iter().enumerate() {
        let img = hostonly[i].as_ref().unwrap();
        table.push_str(&format!(
            "| {c} | {:.2} s | {:.2} s | {} bytes |\n",
            median(&mut generic_t[i]),
            median(&mut host_t[i]),
            size(img)
        ));
    }
    let g = median(&mut generic_t[0]);
    table.push_str(&format!(
        "QEMU set on virtio-blk: {q:.2} s ({} bytes); generic on virtio-blk {g:.2} s = {:.2}x; generic image {} bytes\n",
        size(&qemu),
        g / q,
        size(&sh.generic)
    ));
    eprintln!("{table}");
    let _ = std::fs::remove_file(&disk);
}
