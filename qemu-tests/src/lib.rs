//! QEMU test harness for rootstock: boots real OSTree sysroots (made by the
//! `ostree` CLI) with Debian's kernel under software emulation and reads the
//! busybox test OS's report from the serial console.
//!
//! The pieces are independent: [`debian_kernel`] (cached kernel),
//! [`build_sysroot`] + [`Sysroot::disk_image`] (test OS on an ext4 image),
//! [`dracut_initramfs`] (a cached dracut image), [`run_qemu`]/[`boot`]
//! (QEMU with a timeout, report and timings). [`Scenario`] strings them
//! together; the initramfs and the kernel command line are parameters of
//! each boot, so any initramfs (dracut's, rootstock's) runs the same tests.
//! [`uefi`] boots like a physical machine instead: OVMF firmware and
//! systemd-boot from the disk's ESP, reading the BLS entries ostree wrote.
//!
//! Environment: `ROOTSTOCK_QEMU_CACHE` (default `<repo>/.cache`),
//! `ROOTSTOCK_QEMU_KEEP=DIR` (copy each console log there),
//! `ROOTSTOCK_QEMU_TIMEOUT` (seconds, default 180), `ROOTSTOCK_QEMU_KVER`
//! (kernel version instead of linux-image-amd64's), `ROOTSTOCK_TEST_TMPFS`
//! (where sysroots are built, default /dev/shm), `ROOTSTOCK_REQUIRE_QEMU_TESTS=1`
//! (fail instead of skipping when not root or QEMU is missing).
//!
//! rootstock's own initramfs ([`rootstock_initramfs`]): `ROOTSTOCK_BOOT_BIN`
//! (the static boot program, `/init`) and `ROOTSTOCK_HOST_BIN` (the static
//! host tool: mkinitramfs, and bless/status in the test OS); default what
//! `make static` builds,
//! `ROOTSTOCK_BENCH_N` (boots per initramfs in `tests/bench.rs`, default 1:
//! a smoke run; `make bench` sets 5), `ROOTSTOCK_BENCH_OUT` (where the
//! benchmark writes its Markdown, default `target/bench/`).
//!
//! Boot counting (`tests/boot_counting.rs`): `ROOTSTOCK_QEMU_OLD_KVER` (the
//! fallback's older kernel for kexec, default `6.1.0-55-amd64`, fetched by
//! [`debian_kernel_version`]), `ROOTSTOCK_POWERCUT_SEED` (replays a power-cut
//! run), `ROOTSTOCK_POWERCUT_KILLS` (default 50).

mod arch;
pub mod bench;
pub mod composefs;
mod controller;
mod dracut;
mod kernel;
pub mod packaged;
pub mod powercut;
mod qemu;
mod report;
mod rootstock;
mod scenario;
mod sysroot;
pub mod trixie;
pub mod uefi;
mod util;

pub use arch::{Arch, package_file};
pub use controller::{Controller, HOSTONLY_INIT, add_hostonly_tools, take_hostonly_image};
pub use dracut::{DracutSpec, dracut_initramfs};
pub use kernel::{
    Kernel, OLD_KVER, OLD_KVER_ARM64, debian_kernel, debian_kernel_for, debian_kernel_version,
    debian_kernel_version_for, download_trixie, older_kernel, older_kernel_for, trixie_kernel_for,
};
pub use qemu::{
    Booted, CONSOLE_ARGS, Console, ConsoleLine, Pflash, QemuBoot, accelerator, boot, read_console, run_qemu,
    strip_escapes,
};
pub use report::{
    BEGIN, Checks, END, Report, Timings, assert_field, assert_laid_out, kernel_timestamp, parse_report,
};
pub use rootstock::{
    RootstockTimings, boot_binary, host_binary, rootstock_initramfs, rootstock_initramfs_compressed,
    rootstock_initramfs_with_extras,
};
pub use scenario::{Fixture, Scenario, can_run, can_run_on};
pub use sysroot::{
    BootEntry, IMAGE_MB, OwnKernel, ROOT_LABEL, Sysroot, TestOs, build_sysroot, parse_entry, read_entries,
};
pub use sysroot::{DiskSpec, GptSpec, RootFs, read_ext4_file, xfs_protofile};
pub use trixie::{TrixieBoot, TrixieImage, TrixieScenario, trixie_image};
pub use uefi::{UefiDisk, UefiScenario, UefiTimings, can_run_uefi, can_run_uefi_on};
pub use util::{Error, Result, cache_dir, lock, repo_root, run, tail, tmpfs_dir};
