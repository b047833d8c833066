//! Power cuts: QEMU killed (SIGKILL: the guest's page cache is lost) at a
//! seeded random instant, for the tests that check what a cut leaves.

use crate::qemu::{Console, ConsoleLine, QemuBoot, read_console};
use crate::util::lock;
use std::time::{Duration, Instant};

/// The number of kills (`$kills_var`, else `default`) and the seed
/// (`ROOTSTOCK_POWERCUT_SEED`, else the clock) of power-cut test `label`,
/// printed so that a run can be replayed.
pub fn kills_and_seed(label: &str, kills_var: &str, default: usize) -> (usize, u64) {
    let env = |v: &str| std::env::var(v).ok();
    let kills = env(kills_var).and_then(|v| v.parse().ok()).unwrap_or(default);
    let seed = env("ROOTSTOCK_POWERCUT_SEED").and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    eprintln!("[{label}] seed {seed} (ROOTSTOCK_POWERCUT_SEED={seed} replays it), {kills} kills");
    (kills, seed)
}

/// splitmix64: a tiny seeded generator (the harness is std only).
pub struct Rng(pub u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.range(0.0, 1.0) < p
    }
}

/// When to pull the plug.
#[derive(Clone, Debug)]
pub enum Cut {
    /// At this host time since QEMU's start.
    At(f64),
    /// This long after the first console line containing the needle (if
    /// it never comes, the boot runs to its end).
    After(String, f64),
}

/// Run QEMU and kill it (SIGKILL: a power cut, the guest's page cache lost)
/// as `cut` says; like `run_qemu`, whose lock it takes, with a 2 ms poll.
pub fn run_and_cut(q: &QemuBoot, cut: &Cut) -> Console {
    use std::sync::{Arc, Mutex};
    let _guard = lock("qemu").unwrap();
    let log = std::fs::File::create(&q.log).unwrap();
    let stderr = std::fs::File::create(format!("{}.stderr", q.log.display())).unwrap();
    let mut cmd = q.command();
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(stderr);
    let start = Instant::now();
    let mut child = cmd.spawn().expect("qemu-system-x86_64 starts");
    let stdout = child.stdout.take().unwrap();
    let lines: Arc<Mutex<Vec<ConsoleLine>>> = Arc::default();
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || read_console(stdout, log, start, &lines))
    };
    let mut deadline = match cut {
        Cut::At(t) => Some(start + Duration::from_secs_f64(*t)),
        Cut::After(..) => None,
    };
    let (status, killed) = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break (st, false);
        }
        if let (None, Cut::After(needle, delay)) = (deadline, cut) {
            let needle = needle.as_str();
            let seen = lines.lock().unwrap().iter().find(|l| l.text.contains(needle)).map(|l| l.at);
            deadline = seen.map(|at| start + at + Duration::from_secs_f64(*delay));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) || now >= start + q.timeout {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    Console { lines, timed_out: killed, status: Some(status), elapsed, log: q.log.clone() }
}
