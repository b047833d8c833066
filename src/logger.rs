//! A minimal logger to stderr, prefixed so lines are recognisable in a
//! journal or on a console.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, r: &Record) {
        let level = match r.level() {
            Level::Error => "error: ",
            Level::Warn => "warning: ",
            _ => "",
        };
        eprintln!("rootstock: {level}{}", r.args());
    }
    fn flush(&self) {}
}

static LOGGER: Stderr = Stderr;

/// Install the logger; `debug` shows debug messages too.
pub fn init(debug: bool) {
    // A second call (tests) keeps the first logger: not an error.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug { LevelFilter::Debug } else { LevelFilter::Info });
}
