//! The boot benchmark: every way to boot the busybox test OS's OSTree
//! deployment from one disk, interleaved in one run, `ROOTSTOCK_BENCH_N`
//! boots each (default 1: the smoke run of the normal suite; `make bench`
//! runs 5 and writes benches/boot.md). Each boot is measured on the
//! kernel's clock from "Run /init" to the deployment init's first line
//! (`testos: init started` in the kernel log), on the host's from QEMU's
//! start to that line, with the memory in use at that moment.
//!
//! `bench_compression` (ignored by default; `make bench` runs it) boots
//! rootstock's QEMU-set image compressed each way and measures how long
//! the kernel takes to unpack it.

use rootstock_qemu_tests::bench::{
    Row, Sample, Stats, group_digits, handwritten_initramfs, machine, markdown_table, today,
};
use rootstock_qemu_tests::{
    DiskSpec, DracutSpec, HOSTONLY_INIT, Scenario, TestOs, add_hostonly_tools, assert_field, assert_laid_out,
    can_run, debian_kernel, dracut_initramfs, repo_root, rootstock_initramfs, rootstock_initramfs_compressed,
    run, take_hostonly_image,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn boots() -> usize {
    std::env::var("ROOTSTOCK_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1)
}

/// Where the Markdown goes: `$ROOTSTOCK_BENCH_OUT`, else `<repo>/target/bench`.
fn out_dir() -> PathBuf {
    let dir = std::env::var_os("ROOTSTOCK_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/bench"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// `build`'s image, copied into the scenario's work directory at once: a
/// run in another checkout sharing the cache may replace the cached image
/// (removing this one) at any time; built again when that happened first.
fn keep(s: &Scenario, build: impl Fn() -> rootstock_qemu_tests::Result<PathBuf>) -> PathBuf {
    for _ in 0..3 {
        let image = build().unwrap();
        let copy = s.work.join(image.file_name().unwrap());
        match std::fs::copy(&image, &copy) {
            Ok(_) => return copy,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("copy {}: {e}", image.display()),
        }
    }
    panic!("the cached image kept disappearing (another checkout's runs replace it)")
}

struct Variant {
    name: String,
    initrd: PathBuf,
    /// A boot through rootstock's own PID 1 (checked on the console).
    rootstock_pid1: bool,
    /// The initramfs mounts /var (Debian 12's ostree-prepare-root leaves it
    /// to the booted system: the test OS's init binds it).
    mounts_var: bool,
}

/// Boot every variant `n` times, interleaved (variant order within a round
/// is fixed), checking each boot reached the default deployment laid out.
fn measure(s: &Scenario, variants: &[Variant], n: usize) -> Vec<Row> {
    let mut rows: Vec<Row> = variants
        .iter()
        .map(|v| Row { name: v.name.clone(), bytes: size(&v.initrd), samples: Vec::new() })
        .collect();
    for round in 1..=n {
        for (v, row) in variants.iter().zip(rows.iter_mut()) {
            let b = s.boot(Some(&v.initrd), &s.cmdline(0)).unwrap();
            let log = b.console.log.display().to_string();
            if v.mounts_var {
                assert_laid_out(&b.report, "2");
            } else {
                assert_field(&b.report, "version", "2");
                assert_field(&b.report, "usr_ro", "yes");
            }
            assert!(b.console.find("Kernel panic").is_none(), "{}: kernel panic; console {log}", v.name);
            if v.rootstock_pid1 {
                assert!(b.console.find("rootstock: switching root").is_some(), "{}: console {log}", v.name);
            }
            let sample = Sample::from_console(&b.console)
                .unwrap_or_else(|| panic!("{}: no init-started line or Run /init; console {log}", v.name));
            eprintln!(
                "[bench] round {round}/{n} {}: phase {:.3} s, QEMU → init {:.2} s, unpack {:?}, mem {:?} KiB",
                v.name, sample.phase, sample.qemu_to_init, sample.unpack, sample.mem_used_kb
            );
            row.samples.push(sample);
        }
    }
    rows
}

fn median(row: &Row, f: impl Fn(&Sample) -> Option<f64>) -> f64 {
    row.stats(f).map_or(f64::NAN, |s| s.median)
}

/// A host-only image for the benchmark's VM, made where `mkinitramfs
/// --host` must run, on the machine itself: the generic image boots a copy
/// of the disk with the `init=` that runs it (the disk's default deployment
/// carries what it needs: [`add_hostonly_tools`]), and the image is read
/// back from the copy.
fn hostonly_image(s: &Scenario) -> rootstock_qemu_tests::Result<PathBuf> {
    let generic = rootstock_initramfs(&s.kernel, "generic")?;
    let copy = s.work.join("hostonly-disk.raw");
    run(Command::new("cp").arg("--sparse=always").arg(&s.image).arg(&copy))?;
    let mut q = s.qemu(Some(&generic), &format!("{} init={HOSTONLY_INIT}", s.cmdline(0)));
    q.disks = vec![copy.clone()];
    let b = s.run(&q)?;
    // Not in `work` itself, where `keep` copies it.
    let image = s.work.join("made/hostonly.img");
    std::fs::create_dir_all(s.work.join("made"))?;
    take_hostonly_image(&b, &copy, 0, &image)?;
    let _ = std::fs::remove_file(&copy);
    Ok(image)
}

/// The issue's table: dracut + ostree (the baseline), dracut + rootstock,
/// rootstock's QEMU and generic sets, a host-only image made in the VM, a
/// hand-written busybox init.
#[test]
fn bench_boot_table() {
    if !can_run() {
        return;
    }
    let n = boots();
    let kernel = debian_kernel().unwrap();
    let os = TestOs { deployments: 2, ..Default::default() };
    let s =
        Scenario::custom("bench", &os, |sys| add_hostonly_tools(sys, &kernel), &DiskSpec::default()).unwrap();
    let k = &s.kernel;
    type Build<'a> = &'a dyn Fn() -> rootstock_qemu_tests::Result<PathBuf>;
    let variant = |name: &str, rootstock_pid1, build: Build| Variant {
        name: name.into(),
        initrd: keep(&s, build),
        rootstock_pid1,
        mounts_var: !name.contains("ostree-prepare-root"),
    };
    let variants = [
        variant("dracut 059 + ostree-prepare-root (Debian 12)", false, &|| {
            dracut_initramfs(k, &DracutSpec::ostree_baseline())
        }),
        variant("dracut 059 + rootstock prepare-root", false, &|| {
            dracut_initramfs(k, &DracutSpec::rootstock())
        }),
        variant("rootstock, QEMU set", true, &|| rootstock_initramfs(k, "qemu")),
        variant("rootstock, generic set", true, &|| rootstock_initramfs(k, "generic")),
        variant("rootstock, host-only (`mkinitramfs --host` in the VM)", true, &|| hostonly_image(&s)),
        variant("hand-written busybox /init (virtio + ext4, 11 modules)", false, &|| {
            handwritten_initramfs(k, None)
        }),
    ];
    let rows = measure(&s, &variants, n);
    let table = markdown_table(&rows);

    let phase = |i: usize| median(&rows[i], |s| Some(s.phase));
    let (dracut, qemu, generic, host, hand) = (phase(0), phase(2), phase(3), phase(4), phase(5));
    let ratios = format!(
        "Ratios of the medians: rootstock's QEMU set takes {:.2}× the hand-written init's initramfs phase \
         and {:.3}× dracut + ostree's ({:.1}× faster); the generic set {:.2}× the hand-written one's, the \
         host-only image {:.2}×. Images: QEMU set {} bytes ({:.2}× the hand-written image, {:.3}× dracut's); \
         host-only {} bytes ({:.2}× the hand-written image).",
        qemu / hand,
        qemu / dracut,
        dracut / qemu,
        generic / hand,
        host / hand,
        group_digits(rows[2].bytes),
        rows[2].bytes as f64 / rows[5].bytes as f64,
        rows[2].bytes as f64 / rows[0].bytes as f64,
        group_digits(rows[4].bytes),
        rows[4].bytes as f64 / rows[5].bytes as f64,
    );
    let unpack: Vec<String> = rows
        .iter()
        .map(|r| {
            let u = r.stats(|s| s.unpack).map_or("?".into(), |s| format!("{:.2} s", s.median));
            let run = r.stats(|s| Some(s.run_init)).map_or("?".into(), |s| format!("{:.2} s", s.median));
            format!("{}: unpack {u}, Run /init at {run}", r.name)
        })
        .collect();
    let md = format!(
        "Boot benchmark, {date}: `make bench` (ROOTSTOCK_BENCH_N={n}) on {machine}; QEMU {accel}, 1 vCPU, \
         1 GiB, Debian kernel {kver}, the busybox test OS on an ext4 disk (virtio). Each cell: median \
         (min–max) over {n} boots, the variants interleaved. Initramfs phase: the kernel's \"Run /init\" → \
         the deployment's init started (kernel clock); QEMU start → init on the host's clock; memory in use: \
         MemTotal − MemAvailable when the deployment's init started. Images compressed as each tool does by \
         default (dracut: zstd -15; rootstock and the hand-written image: `mkinitramfs`'s default for this \
         kernel, zstd -19).\n\n{table}\n{ratios}\n\nKernel medians (the initramfs is unpacked before Run /init): \
         {unpack}.\n",
        date = today(),
        machine = machine(),
        accel = rootstock_qemu_tests::accelerator(),
        kver = k.version,
        unpack = unpack.join("; "),
    );
    let out = out_dir().join("boot.md");
    std::fs::write(&out, &md).unwrap();
    eprintln!("[bench] wrote {}:\n{md}", out.display());
    assert!(qemu < dracut, "rootstock's initramfs should reach init sooner: {qemu:.2} s vs {dracut:.2} s");
}

/// rootstock's QEMU-set image compressed each way: its size, how long the
/// kernel takes to unpack it, when "Run /init" comes and the phase after it.
#[test]
#[ignore = "a benchmark: `make bench` runs it"]
fn bench_compression() {
    if !can_run() {
        return;
    }
    let n = boots();
    let s = Scenario::new("bench-compress", &TestOs { deployments: 2, ..Default::default() }).unwrap();
    let variants: Vec<Variant> = ["none", "gzip", "zstd", "xz"]
        .into_iter()
        .map(|c| Variant {
            name: c.into(),
            initrd: keep(&s, || rootstock_initramfs_compressed(&s.kernel, "qemu", c)),
            rootstock_pid1: true,
            mounts_var: true,
        })
        .collect();
    let rows = measure(&s, &variants, n);
    let cell = |s: Option<Stats>, scale: f64, d: usize| s.map_or("?".into(), |s| s.show(scale, d));
    let mut table = String::from(
        "| compression | image bytes | kernel unpack, ms | Run /init, s | initramfs phase, s |\n|---|---|---|---|---|\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.name,
            group_digits(r.bytes),
            cell(r.stats(|s| s.unpack), 1000.0, 0),
            cell(r.stats(|s| Some(s.run_init)), 1.0, 2),
            cell(r.stats(|s| Some(s.phase)), 1.0, 2),
        ));
    }
    let md = format!(
        "Compression benchmark, {date}: `make bench` (ROOTSTOCK_BENCH_N={n}) on {machine}; QEMU {accel}, \
         1 vCPU, Debian kernel {kver}; rootstock's QEMU-set image made with each `--compress`. Each cell: \
         median (min–max) over {n} boots, interleaved. Kernel unpack: \"Trying to unpack rootfs image as \
         initramfs\" → \"Freeing initrd memory\" (kernel clock; other initcalls run in between).\n\n{table}",
        date = today(),
        machine = machine(),
        accel = rootstock_qemu_tests::accelerator(),
        kver = s.kernel.version,
    );
    let out = out_dir().join("compression.md");
    std::fs::write(&out, &md).unwrap();
    eprintln!("[bench] wrote {}:\n{md}", out.display());
}

/// Where rootstock's initramfs phase goes: the QEMU set booted with
/// `rootstock.debug loglevel=8` (debug lines reach the console), its per-step times (the debug log's `step` lines, each
/// with the step's duration and the time since PID 1 started) and each
/// module loaded, on the kernel's clock.
#[test]
#[ignore = "a benchmark: `make bench` runs it"]
fn bench_steps() {
    if !can_run() {
        return;
    }
    let s = Scenario::new("bench-steps", &TestOs { deployments: 2, ..Default::default() }).unwrap();
    let initrd = keep(&s, || rootstock_initramfs(&s.kernel, "qemu"));
    // The memory at init (KiB, from /proc/meminfo) after each kind of image.
    let mut memory = Vec::new();
    for (name, image) in [
        ("rootstock, QEMU set", initrd.clone()),
        ("rootstock, generic set", keep(&s, || rootstock_initramfs(&s.kernel, "generic"))),
        ("hand-written", keep(&s, || handwritten_initramfs(&s.kernel, None))),
        ("rootstock, QEMU set, gzip", keep(&s, || rootstock_initramfs_compressed(&s.kernel, "qemu", "gzip"))),
    ] {
        let b = s.boot(Some(&image), &s.cmdline(0)).unwrap();
        memory.push(format!("{name}: {}", b.report.get("meminfo").unwrap_or("?")));
    }
    let b = s.boot(Some(&initrd), &format!("{} rootstock.debug loglevel=8", s.cmdline(0))).unwrap();
    assert_laid_out(&b.report, "2");
    let sample = Sample::from_console(&b.console).unwrap();
    let lines: Vec<&str> = b
        .console
        .texts()
        .filter(|t| {
            t.contains("Run /init")
                || t.contains("rootstock: step ")
                || t.contains("rootstock: loaded ")
                || t.contains("testos: init started")
        })
        .collect();
    let md = format!(
        "Where the QEMU set's initramfs phase goes, {date}: one boot with `rootstock.debug` on {machine} \
         (QEMU {accel}, Debian kernel {kver}); phase {phase:.3} s. The kernel's timestamps, then the \
         step: its duration (at: ms since rootstock started).\n\n```\n{}\n```\n\nMemory when the \
         deployment's init started (KiB, /proc/meminfo), one boot each:\n\n```\n{}\n```\n",
        lines.join("\n"),
        memory.join("\n"),
        date = today(),
        machine = machine(),
        accel = rootstock_qemu_tests::accelerator(),
        kver = s.kernel.version,
        phase = sample.phase,
    );
    let out = out_dir().join("steps.md");
    std::fs::write(&out, &md).unwrap();
    eprintln!("[bench] wrote {}:\n{md}", out.display());
}

/// arm64 beside x86_64: rootstock's QEMU and generic sets for Debian's
/// arm64 kernel on `qemu-system-aarch64 -M virt` (Cortex-A57) and for its
/// amd64 kernel on `qemu-system-x86_64`, both software emulation on this
/// host, interleaved: "Run /init" → rootstock's switch root (its own
/// phase), → the deployment's init, QEMU start → init, and the image sizes
/// with the boot program's. `make bench` writes benches/arm64.md; the
/// normal suite boots each once.
#[test]
fn bench_arm64_beside_x86_64() {
    use rootstock_qemu_tests::{Arch, RootstockTimings, can_run_on};
    if !can_run_on(Arch::Aarch64) {
        return;
    }
    let n = boots();
    let scenarios: Vec<(Arch, Scenario)> = [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .map(|arch| {
            let os = TestOs { deployments: 2, arch, ..Default::default() };
            (arch, Scenario::new(&format!("bench-{}", arch.uname_m()), &os).unwrap())
        })
        .collect();
    // (row, the scenario's index, image, Run /init → switch root per boot)
    let mut rows: Vec<(Row, usize, PathBuf, Vec<f64>)> = Vec::new();
    for (i, (arch, s)) in scenarios.iter().enumerate() {
        for set in ["qemu", "generic"] {
            let image = keep(s, || rootstock_initramfs(&s.kernel, set));
            let name = format!("{}, {set} set (kernel {})", arch.uname_m(), s.kernel.version);
            rows.push((Row { name, bytes: size(&image), samples: Vec::new() }, i, image, Vec::new()));
        }
    }
    for round in 1..=n {
        for (row, i, image, switch) in rows.iter_mut() {
            let (arch, s) = &scenarios[*i];
            let b = s.boot(Some(image), &s.cmdline(0)).unwrap();
            let log = b.console.log.display().to_string();
            assert_laid_out(&b.report, "2");
            assert_field(&b.report, "machine", arch.uname_m());
            let phase = RootstockTimings::from_console(&b.console)
                .initramfs_phase()
                .unwrap_or_else(|| panic!("{}: no switch root line; console {log}", row.name));
            let sample = Sample::from_console(&b.console)
                .unwrap_or_else(|| panic!("{}: no init-started line; console {log}", row.name));
            eprintln!("[bench-arch] round {round}/{n} {}: switch root {phase:.3} s", row.name);
            switch.push(phase);
            row.samples.push(sample);
        }
    }
    let show = |v: &[f64]| Stats::of(v).map_or("?".into(), |s| s.show(1.0, 3));
    let mut table = String::from(
        "| machine, module set | Run /init → switch root, s | Run /init → init, s | QEMU start → init, s | \
         initramfs bytes |\n|---|---|---|---|---|\n",
    );
    for (row, _, _, switch) in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.name,
            show(switch),
            row.stats(|s| Some(s.phase)).map_or("?".into(), |s| s.show(1.0, 3)),
            row.stats(|s| Some(s.qemu_to_init)).map_or("?".into(), |s| s.show(1.0, 2)),
            group_digits(row.bytes),
        ));
    }
    let med = |k: usize| Stats::of(&rows[k].3).map_or(f64::NAN, |s| s.median);
    let binaries: Vec<String> = [Arch::X86_64, Arch::Aarch64]
        .iter()
        .map(|a| {
            let p = a.boot_binary().unwrap();
            format!("{} {} bytes", a.uname_m(), group_digits(size(&p)))
        })
        .collect();
    let md = format!(
        "arm64 beside x86_64, {date}: `make bench` (ROOTSTOCK_BENCH_N={n}) on {machine}; QEMU TCG (software \
         emulation of both), 1 vCPU, 1 GiB; x86_64: `qemu-system-x86_64` (pc); arm64: `qemu-system-aarch64 \
         -M virt -cpu cortex-a57`. The busybox test OS on an ext4 disk (virtio-pci), images by `rootstock \
         mkinitramfs` on this host (zstd). Each cell: median (min–max) over {n} boots, interleaved.\n\n\
         {table}\nRatios of the medians, arm64 / x86_64, Run /init → switch root: QEMU set {:.2}, generic \
         set {:.2}. The boot program (`rootstock-boot`, static musl): {}.\n",
        med(2) / med(0),
        med(3) / med(1),
        binaries.join(", "),
        date = today(),
        machine = machine(),
    );
    let out = out_dir().join("arm64.md");
    std::fs::write(&out, &md).unwrap();
    eprintln!("[bench-arch] wrote {}:\n{md}", out.display());
}
