//! A minimal logger: to stderr (the journal under systemd, the console by
//! hand), or to `/dev/kmsg` when running as PID 1, so messages carry kernel
//! timestamps and reach the console with the kernel's own lines.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger;

/// `/dev/kmsg`, once PID 1 has mounted devtmpfs.
static KMSG: OnceLock<Mutex<File>> = OnceLock::new();

impl Log for Logger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, r: &Record) {
        let (prefix, priority) = match r.level() {
            Level::Error => ("error: ", 3),
            Level::Warn => ("warning: ", 4),
            Level::Info => ("", 6),
            Level::Debug | Level::Trace => ("", 7),
        };
        if let Some(kmsg) = KMSG.get()
            && let Ok(mut f) = kmsg.lock()
        {
            // One write per record: the kernel takes each write as one message.
            let msg = format!("<{priority}>rootstock: {prefix}{}\n", r.args());
            if f.write_all(msg.as_bytes()).is_ok() {
                return;
            }
        }
        eprintln!("rootstock: {prefix}{}", r.args());
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

/// Install the logger; `debug` shows debug messages too.
pub fn init(debug: bool) {
    // A second call keeps the first logger and only changes the level.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug { LevelFilter::Debug } else { LevelFilter::Info });
}

/// Send log records to `/dev/kmsg` from now on. Returns false (and keeps
/// logging to stderr, i.e. the console) when it cannot be opened.
pub fn use_kmsg(path: &str) -> bool {
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => KMSG.set(Mutex::new(f)).is_ok(),
        Err(_) => false,
    }
}

/// Write `text` to stdout. A reader that went away (`rootstock status |
/// head -1`: EPIPE) is its own business, not a reason to panic as
/// `println!` does.
pub fn stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
