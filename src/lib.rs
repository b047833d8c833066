//! rootstock: the early-boot component of an OSTree system.
//!
//! Pure parsing and decisions ([`cmdline`], [`config`], [`layout`],
//! [`select`], [`plan`]) are separate from the layer that touches the system
//! ([`sys`]); every real path is a parameter.

#![deny(unsafe_code)]

pub mod cli;
pub mod cmdline;
pub mod config;
pub mod counting;
pub mod cpio;
pub mod errno;
pub mod error;
pub mod layout;
pub mod logger;
pub mod mkinitramfs;
pub mod modload;
pub mod modules;
pub mod pid1;
pub mod plan;
pub mod prepare;
pub mod probe;
pub mod resolve;
pub mod select;
pub mod state;
pub mod status;
pub mod sys;

pub use error::Error;
