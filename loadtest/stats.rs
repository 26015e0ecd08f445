//! Measurements: latency histograms, /proc readings of the server's and imload's own CPU and
//! memory, and the report (printed as a table and optionally written as JSON).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in microseconds, 1 µs .. 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static bounds are valid")
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// CPU time (user + system) of a process so far.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / clock_ticks()))
}

/// (current RSS, peak RSS) in KiB.
pub fn memory_kib(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Context switches of all of a process's threads so far (voluntary: a thread went to sleep
/// waiting, so something had to wake it; involuntary: it was preempted). A thread's wait for
/// work that another thread hands it is one voluntary switch: per message, they count the
/// hand-offs that slept. Threads that ended meanwhile are not counted.
pub fn context_switches(pid: &str) -> Option<(u64, u64)> {
    let mut total = (0, 0);
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(t.ok()?.path().join("status")) else { continue };
        for l in status.lines() {
            let field = |name: &str| l.strip_prefix(name).and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(v) = field("voluntary_ctxt_switches:") {
                total.0 += v;
            } else if let Some(v) = field("nonvoluntary_ctxt_switches:") {
                total.1 += v;
            }
        }
    }
    Some(total)
}

/// CPU and memory of the server (when its pid is known) and of imload itself, over a window.
pub struct Usage {
    server: Option<String>,
    server_cpu0: Option<Duration>,
    server_switches0: Option<(u64, u64)>,
    own_cpu0: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UsageReport {
    pub server_cpu_s: Option<f64>,
    pub server_rss_kib: Option<u64>,
    pub server_peak_rss_kib: Option<u64>,
    /// The server's threads' voluntary and involuntary context switches in the window.
    pub server_voluntary_switches: Option<u64>,
    pub server_involuntary_switches: Option<u64>,
    pub imload_cpu_s: Option<f64>,
}

impl Usage {
    pub fn start(server_pid: Option<u32>) -> Usage {
        let server = server_pid.map(|p| p.to_string());
        Usage {
            server_cpu0: server.as_deref().and_then(cpu_time),
            server_switches0: server.as_deref().and_then(context_switches),
            server,
            own_cpu0: cpu_time("self"),
        }
    }

    pub fn finish(&self) -> UsageReport {
        let diff = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?).as_secs_f64());
        let mem = self.server.as_deref().and_then(memory_kib);
        let switches = match (self.server_switches0, self.server.as_deref().and_then(context_switches)) {
            (Some(a), Some(b)) => Some((b.0.saturating_sub(a.0), b.1.saturating_sub(a.1))),
            _ => None,
        };
        UsageReport {
            server_voluntary_switches: switches.map(|s| s.0),
            server_involuntary_switches: switches.map(|s| s.1),
            server_cpu_s: diff(self.server_cpu0, self.server.as_deref().and_then(cpu_time)),
            server_rss_kib: mem.map(|m| m.0),
            server_peak_rss_kib: mem.map(|m| m.1),
            imload_cpu_s: diff(self.own_cpu0, cpu_time("self")),
        }
    }
}

/// Raises this process's open-file limit to its hard limit (each connection is a file).
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write/read only the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    lim.rlim_cur
}
