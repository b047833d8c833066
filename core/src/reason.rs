//! Why a deployment was chosen: written to the state file, carried across
//! a kexec on the command line (`rootstock.kexeced=`).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// Why the selected deployment was chosen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// The one `ostree=` names (or the default, without `ostree=`).
    #[default]
    Default,
    /// `rootstock.deployment=`.
    Manual,
    /// The requested one could not boot; this is the next in ostree's order.
    Fallback,
    /// Laid out by `rootstock prepare-soft-reboot` and entered by
    /// `systemctl soft-reboot`, on the kernel that was running.
    SoftReboot,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Default => "default",
            Reason::Manual => "manual",
            Reason::Fallback => "fallback",
            Reason::SoftReboot => "soft-reboot",
        })
    }
}

impl FromStr for Reason {
    type Err = ();
    fn from_str(s: &str) -> Result<Reason, ()> {
        match s {
            "default" => Ok(Reason::Default),
            "manual" => Ok(Reason::Manual),
            "fallback" => Ok(Reason::Fallback),
            "soft-reboot" => Ok(Reason::SoftReboot),
            _ => Err(()),
        }
    }
}
