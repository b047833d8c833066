//! The command line of the host tool, `rootstock`.

use std::ffi::OsString;
use std::path::PathBuf;

use argh::FromArgs;

use rootstock_core::history::Verdict;
use rootstock_core::logger;

use crate::error::Error;
use crate::{kernel_hook, mkinitramfs, rollback, soft_reboot, status};

#[derive(FromArgs, Debug)]
/// rootstock: the OSTree deployments of this machine, their boot counting,
/// and rootstock's own initramfs. (Booting is rootstock-boot's job.)
struct Top {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
// Parsed once per run: the size of mkinitramfs's many options does not matter.
#[allow(clippy::large_enum_variant)]
enum Cmd {
    Status(StatusArgs),
    Mkinitramfs(mkinitramfs::MkinitramfsArgs),
    Bless(BlessArgs),
    PrepareSoftReboot(soft_reboot::SoftRebootArgs),
    Rollback(rollback::RollbackArgs),
    KernelHook(kernel_hook::KernelHookArgs),
}

#[derive(FromArgs, Debug)]
/// Record that the booted deployment is good (boot counting stops for it),
/// or with --bad that it must not be booted again while another can be.
#[argh(subcommand, name = "bless")]
struct BlessArgs {
    /// mark the booted deployment bad instead of good
    #[argh(switch)]
    bad: bool,
    /// where the physical root is mounted (default /sysroot)
    #[argh(option, default = "PathBuf::from(\"/sysroot\")")]
    sysroot: PathBuf,
    /// the running root, compared with each deployment (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    root: PathBuf,
    /// runtime directory holding ostree-booted (default /run)
    #[argh(option, default = "PathBuf::from(\"/run\")")]
    run_dir: PathBuf,
    /// the kernel's boot id, for the boot history (default
    /// /proc/sys/kernel/random/boot_id)
    #[argh(option, default = "PathBuf::from(\"/proc/sys/kernel/random/boot_id\")")]
    boot_id: PathBuf,
    /// the EFI system partition, for systemd-boot's counters (default: /efi
    /// or /boot/efi under the root, whichever holds loader/entries)
    #[argh(option)]
    esp: Option<PathBuf>,
}

#[derive(FromArgs, Debug)]
/// Show the deployments: which is default, rollback, booted.
#[argh(subcommand, name = "status")]
struct StatusArgs {
    /// where the physical root is mounted (default /sysroot)
    #[argh(option, default = "PathBuf::from(\"/sysroot\")")]
    sysroot: PathBuf,
    /// the running root, compared with each deployment (default /)
    #[argh(option, default = "PathBuf::from(\"/\")")]
    root: PathBuf,
    /// runtime directory holding rootstock/state (default /run)
    #[argh(option, default = "PathBuf::from(\"/run\")")]
    run_dir: PathBuf,
    /// print JSON instead of a table
    #[argh(switch)]
    json: bool,
    /// show the boot history (attempts, verdicts, rollbacks) instead
    #[argh(switch)]
    history: bool,
    /// the kernel's boot id, to tell the running attempt (default
    /// /proc/sys/kernel/random/boot_id)
    #[argh(option, default = "PathBuf::from(\"/proc/sys/kernel/random/boot_id\")")]
    boot_id: PathBuf,
    /// the EFI system partition, for systemd-boot's counters (default: /efi
    /// or /boot/efi under the root, whichever holds loader/entries)
    #[argh(option)]
    esp: Option<PathBuf>,
}

/// Run the command line; returns the process exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    let top: Top = match rootstock_core::args::parse(&argv, "rootstock") {
        Ok(t) => t,
        Err(code) => return code,
    };
    let result = match top.cmd {
        Cmd::Status(a) => show_status(a),
        Cmd::Mkinitramfs(a) => mkinitramfs::run(a).map_err(Error::from),
        Cmd::Bless(a) => bless(a),
        Cmd::PrepareSoftReboot(a) => {
            logger::init(false);
            soft_reboot::run(a)
        }
        Cmd::Rollback(a) => {
            logger::init(false);
            rollback::run(a)
        }
        Cmd::KernelHook(a) => {
            logger::init(false);
            kernel_hook::run(a)
        }
    };
    rootstock_core::args::exit_code(result)
}

fn bless(a: BlessArgs) -> Result<(), Error> {
    logger::init(false);
    let (base, change) = status::bless(&a.sysroot, &a.root, &a.run_dir, !a.bad, &mut rootstock_sys::Linux)?;
    let verdict = if a.bad { "bad" } else { "good" };
    match change {
        Some(c) => log::info!("{base} is now {verdict} ({c})"),
        None => log::info!("{base} was already {verdict}"),
    }
    let v = if a.bad { Verdict::Bad } else { Verdict::Blessed };
    let paths = (a.sysroot.as_path(), a.root.as_path(), a.run_dir.as_path());
    match rollback::record_blessing(&mut rootstock_sys::Linux, paths, &a.boot_id, v) {
        Ok(Some(r)) => log::info!("boot history: attempt {} is {v}", r.seq),
        Ok(None) => {}
        // The marker is what counts; the history is evidence.
        Err(e) => log::warn!("boot history: {e}: the verdict is not recorded"),
    }
    bless_loader_entry(&a)
}

/// The boot loader's counted entry, when this boot is its deployment's:
/// good or bad as `bless` was told ([`crate::esp::bless_booted_entry`]).
fn bless_loader_entry(a: &BlessArgs) -> Result<(), Error> {
    // This userspace's state, as status reads it (after a soft reboot, the
    // one prepare-soft-reboot left, which names no entry of the boot loader).
    let boot = status::gather(&a.sysroot, &a.root, &a.run_dir).ok().and_then(|s| s.boot);
    let entry = boot.and_then(|b| b.loader_entry);
    let paths = (a.root.as_path(), a.run_dir.as_path(), a.esp.as_deref());
    crate::esp::bless_booted_entry(&mut rootstock_sys::Linux, paths, entry.as_deref(), !a.bad)
        .map(|said| said.into_iter().for_each(|m| log::info!("{m}")))
        .map_err(|why| Error::LoaderEntry { why })
}

fn show_status(a: StatusArgs) -> Result<(), Error> {
    logger::init(false);
    if a.history {
        let booted = status::booted_deployment(&a.sysroot, &a.root, &a.run_dir)
            .ok()
            .flatten()
            .map(|(stateroot, id)| format!("{stateroot}/{id}"));
        let h = status::history(&a.sysroot, &rollback::read_boot_id(&a.boot_id), booted.as_deref());
        let text = if a.json {
            format!("{}\n", serde_json::to_string_pretty(&h).unwrap_or_default())
        } else {
            status::render_history(&h)
        };
        rootstock_core::logger::stdout(&text);
        return Ok(());
    }
    let mut s = status::gather(&a.sysroot, &a.root, &a.run_dir)?;
    status::with_esp(&mut s, &a.root, a.esp.as_deref());
    if a.json {
        // Serialising plain structs of strings and numbers cannot fail.
        rootstock_core::logger::stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&s).unwrap_or_default()
        ));
    } else {
        rootstock_core::logger::stdout(&status::render(&s));
    }
    Ok(())
}
