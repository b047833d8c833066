//! What both programs do with their command line around argh: arguments
//! must be UTF-8, the program is named after argv[0], `--help` prints to
//! stdout and exits 0, a usage error prints to stderr and exits 2; a command
//! that fails is logged and exits 1.

use std::ffi::OsString;
use std::fmt::Display;
use std::path::Path;

/// Parse `argv` (argv[0] first) into `T`; `Err` is the exit code to return.
pub fn parse<T: argh::FromArgs>(argv: &[OsString], default_name: &str) -> Result<T, i32> {
    let mut strs = Vec::with_capacity(argv.len());
    for a in argv {
        match a.to_str() {
            Some(s) => strs.push(s),
            None => {
                eprintln!("rootstock: argument {} is not valid UTF-8", a.to_string_lossy());
                return Err(2);
            }
        }
    }
    let name =
        strs.first().and_then(|s| Path::new(s).file_name().and_then(|n| n.to_str())).unwrap_or(default_name);
    T::from_args(&[name], strs.get(1..).unwrap_or(&[])).map_err(|e| {
        // --help exits 0 with the text on stdout; errors go to stderr.
        if e.status.is_ok() {
            crate::logger::stdout(&format!("{}\n", e.output));
            0
        } else {
            eprintln!("{}", e.output);
            2
        }
    })
}

/// The exit code of a command's result: 0, or 1 with the error logged.
pub fn exit_code<E: Display>(result: Result<(), E>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}
