//! CPU time and peak memory of other processes, from /proc.
//!
//! CPU is `utime + stime` of `/proc/<pid>/stat` (every thread, in clock
//! ticks, so 10 ms resolution at the usual 100 Hz), as a delta over a phase.
//! Peak RSS is `VmHWM` of `/proc/<pid>/status`; before each phase it is
//! reset to the current RSS by writing `5` to `/proc/<pid>/clear_refs`, so it
//! is the peak *of that phase*. Where the reset is refused it is the peak
//! since the process started, and the report says so.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};

/// A process being measured.
#[derive(Clone, Debug)]
pub struct Proc {
    /// Its name in the report.
    pub name: String,
    /// Its pid.
    pub pid: u32,
}

/// One process's usage over a phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// CPU seconds (user + system) spent during the phase.
    pub cpu_s: f64,
    /// Peak RSS during the phase (or since start if `lifetime_peak`), KiB.
    pub peak_rss_kib: u64,
    /// Whether the peak could not be reset and is the lifetime peak.
    pub lifetime_peak: bool,
}

impl Usage {
    /// Adds another stretch of the same phase: CPU summed, the higher peak.
    pub fn add(&mut self, other: Usage) {
        self.cpu_s += other.cpu_s;
        self.peak_rss_kib = self.peak_rss_kib.max(other.peak_rss_kib);
        self.lifetime_peak |= other.lifetime_peak;
    }
}

/// Returns the CPU seconds (user + system) `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')').context("bad /proc stat")? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) as f64 / rustix::param::clock_ticks_per_second() as f64)
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = s
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} for pid {pid}"))?;
    Ok(line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

/// Returns `pid`'s peak RSS (VmHWM), KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// Resets `pid`'s peak RSS to its current RSS; false if refused.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Returns the pid of the one process with `arg` among its arguments (for
/// example its config file).
pub fn find_by_arg(arg: &Path) -> Result<u32> {
    let want = arg.to_str().context("utf-8 path")?;
    let mut found = vec![];
    for e in std::fs::read_dir("/proc")? {
        let e = e?;
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmd.split(|b| *b == 0).any(|a| a == want.as_bytes()) {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(*pid),
        [] => bail!("no process runs with {want}"),
        many => bail!("several processes run with {want}: {many:?}"),
    }
}

/// Usage measured over one phase for a set of processes.
pub struct Meter {
    procs: Vec<Proc>,
    cpu0: Vec<f64>,
    reset: Vec<bool>,
}

impl Meter {
    /// Resets the peaks and notes the CPU time so far.
    pub fn start(procs: &[Proc]) -> Result<Self> {
        let reset = procs.iter().map(|p| reset_peak(p.pid)).collect();
        let cpu0 = procs
            .iter()
            .map(|p| cpu_seconds(p.pid))
            .collect::<Result<_>>()?;
        Ok(Self {
            procs: procs.to_vec(),
            cpu0,
            reset,
        })
    }

    /// Returns each process's usage since `start`, in the order given.
    pub fn finish(self) -> Result<Vec<Usage>> {
        let mut out = vec![];
        for (i, p) in self.procs.iter().enumerate() {
            out.push(Usage {
                cpu_s: cpu_seconds(p.pid)? - self.cpu0[i],
                peak_rss_kib: peak_rss_kib(p.pid)?,
                lifetime_peak: !self.reset[i],
            });
        }
        Ok(out)
    }
}

/// CPU seconds used so far by every process on the machine except `skip`
/// (and this one), by pid.
pub fn others_cpu(skip: &[u32]) -> std::collections::HashMap<u32, f64> {
    let me = std::process::id();
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || skip.contains(&pid) {
            continue;
        }
        if let Ok(c) = cpu_seconds(pid) {
            out.insert(pid, c);
        }
    }
    out
}

/// CPU seconds other processes used between two [`others_cpu`] readings
/// (a process started in between counts whole; one that exited is missed).
pub fn others_delta(
    a: &std::collections::HashMap<u32, f64>,
    b: &std::collections::HashMap<u32, f64>,
) -> f64 {
    b.iter()
        .map(|(pid, c)| c - a.get(pid).copied().unwrap_or(0.0))
        .filter(|d| *d > 0.0)
        .sum()
}

/// Hypervisor steal ticks and all ticks, from the `cpu` line of /proc/stat.
pub fn steal_ticks() -> Result<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat")?;
    let line = s.lines().next().context("empty /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    ensure!(v.len() >= 8, "short cpu line in /proc/stat: {line}");
    Ok((v[7], v[..8].iter().sum()))
}
