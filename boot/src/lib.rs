//! rootstock-boot: the only program that goes into an initramfs. As PID 1 of
//! rootstock's own initramfs ([`pid1`]) it mounts the API filesystems, loads
//! the drivers for the root device ([`modload`]), finds it by its
//! superblock ([`probe`]), mounts it, lays out the deployment and switches
//! root; in a dracut initramfs it is `prepare-root` ([`cli`]).

#![deny(unsafe_code)]

pub mod cli;
pub mod error;
pub mod modload;
pub mod pid1;
pub mod probe;

pub use error::Error;
