//! rootstock-core: everything rootstock decides, shared by the boot program
//! (PID 1, `prepare-root`) and the host tool (`status`, `bless`,
//! `mkinitramfs`).
//!
//! Pure parsing and decisions ([`cmdline`], [`config`], [`layout`],
//! [`select`], [`counting`], [`plan`], [`state`], [`modules`], [`cpio`]) read
//! the physical root but change nothing; every change goes through the
//! [`seam`], which `rootstock-sys` implements with system calls and
//! [`seam::fake::Recorder`] records (tests, `--dry-run`). Every real path is a
//! parameter.

#![deny(unsafe_code)]

pub mod args;
pub mod cmdline;
pub mod composefs;
pub mod config;
pub mod confine;
pub mod counting;
pub mod cpio;
pub mod errno;
pub mod gvariant;
pub mod gvariant_read;
pub mod history;
pub mod integrity;
pub mod layout;
pub mod lock;
pub mod logger;
pub mod modules;
pub mod plan;
pub mod prepare;
pub mod reason;
pub mod resolve;
pub mod rollback;
pub mod seam;
pub mod select;
pub mod signature;
pub mod soft_reboot;
pub mod state;
#[cfg(any(test, feature = "test-support"))]
pub mod testutil;
pub mod text;
