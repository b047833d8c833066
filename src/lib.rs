//! rootstock, the host tool: `status`, `bless` and `mkinitramfs`, over
//! rootstock-core. The boot program (`rootstock-boot`) is what goes into an
//! initramfs; `mkinitramfs` packs it.

#![deny(unsafe_code)]

pub mod arch;
pub mod cli;
pub mod compress;
pub mod error;
pub mod esp;
pub mod firmware;
pub mod hostonly;
pub mod kernel_hook;
pub mod mkinitramfs;
pub mod modules;
pub mod output;
pub mod rollback;
#[cfg(test)]
mod set_tests;
pub mod soft_reboot;
pub mod status;

pub use error::Error;
