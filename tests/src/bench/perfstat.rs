//! Counting one process's syscalls, context switches and CPU time (kernel
//! included) with `perf stat`, switched on and off around a measured stretch
//! through perf's control FIFO (`--control`, each command acknowledged), so
//! that start-up and warm-up are not counted.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;

/// How long perf has to attach and to answer a command.
const PERF_TIMEOUT: Duration = Duration::from_secs(10);

/// What perf counted while enabled.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// System calls entered (`raw_syscalls:sys_enter`), every thread.
    pub syscalls: u64,
    /// Context switches, voluntary and not.
    pub switches: u64,
    /// CPU time, user and kernel (`task-clock`), in milliseconds.
    pub cpu_ms: f64,
}

/// A `perf stat` (or `perf record`) attached to one process, counting only
/// between [`PerfStat::enable`] and [`PerfStat::disable`]; killed if
/// dropped unread.
pub struct PerfStat {
    child: Child,
    ctl: File,
    ack: File,
    out: PathBuf,
    _dir: TempDir,
}

impl PerfStat {
    /// Attaches `perf stat` to `pid` with its counters off.
    pub fn attach(pid: u32) -> Result<Self> {
        Self::spawn(
            pid,
            &[
                "stat",
                "-x,",
                "-e",
                "raw_syscalls:sys_enter,context-switches,task-clock",
            ],
            None,
        )
    }

    /// Attaches `perf record` (CPU-clock samples, user and kernel) to
    /// `pid`, sampling off, writing to `data` (for `perf report -i`).
    pub fn record(pid: u32, data: &std::path::Path) -> Result<Self> {
        Self::spawn(
            pid,
            &["record", "-e", "cpu-clock", "-F", "20000", "-g"],
            Some(data),
        )
    }

    fn spawn(pid: u32, args: &[&str], data: Option<&std::path::Path>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("meshgw-perf-").tempdir()?;
        let (ctl, ack, out) = (
            dir.path().join("ctl"),
            dir.path().join("ack"),
            dir.path().join("out"),
        );
        for fifo in [&ctl, &ack] {
            let ok = Command::new("mkfifo").arg(fifo).status()?.success();
            ensure!(ok, "mkfifo {} failed", fifo.display());
        }
        let child = Command::new("perf")
            .args(args)
            .arg("--delay=-1")
            .arg("--control")
            .arg(format!("fifo:{},{}", ctl.display(), ack.display()))
            .arg("-o")
            .arg(data.unwrap_or(&out))
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running perf (install linux-perf: scripts/install-bench-deps.sh)")?;
        // perf opens both FIFOs read-write; until it has, opening the
        // control FIFO for writing without blocking fails (ENXIO).
        let deadline = Instant::now() + PERF_TIMEOUT;
        let ctl_file = loop {
            match OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&ctl)
            {
                Ok(f) => break f,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => bail!("perf did not open its control FIFO in {PERF_TIMEOUT:?}: {e}"),
            }
        };
        let ack_file = OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&ack)?;
        Ok(Self {
            child,
            ctl: ctl_file,
            ack: ack_file,
            out,
            _dir: dir,
        })
    }

    /// Sends `cmd` and waits for perf's `ack`.
    fn command(&mut self, cmd: &str) -> Result<()> {
        self.ctl.write_all(format!("{cmd}\n").as_bytes())?;
        let deadline = Instant::now() + PERF_TIMEOUT;
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while !String::from_utf8_lossy(&got).contains("ack") {
            match self.ack.read(&mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
            ensure!(
                Instant::now() < deadline,
                "perf did not acknowledge `{cmd}` in {PERF_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Starts counting.
    pub fn enable(&mut self) -> Result<()> {
        self.command("enable")
    }

    /// Stops counting.
    pub fn disable(&mut self) -> Result<()> {
        self.command("disable")
    }

    /// Stops perf and returns what it counted.
    pub fn finish(mut self) -> Result<Counts> {
        let (status, err) = self.stop()?;
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        parse(&text).with_context(|| format!("perf stat ({status}) counted nothing: {err}{text}"))
    }

    /// Stops perf (SIGINT: it writes its output) and returns its exit
    /// status and standard error.
    pub fn stop(&mut self) -> Result<(std::process::ExitStatus, String)> {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).context("perf pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::INT)?;
        let status = self.child.wait()?;
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        Ok((status, err))
    }
}

impl Drop for PerfStat {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads perf stat's CSV output (`-x,`: value, unit, event, ...).
fn parse(text: &str) -> Option<Counts> {
    let mut c = Counts::default();
    let mut seen = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split(',');
        let (Some(value), Some(_unit), Some(event)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        match event {
            "raw_syscalls:sys_enter" => c.syscalls = value.parse().ok()?,
            "context-switches" => c.switches = value.parse().ok()?,
            "task-clock" => c.cpu_ms = value.parse().ok()?,
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_csv_is_read() {
        let out = "# started on Sun Dec  6 09:19:45 2026\n\n\
                   821596,,raw_syscalls:sys_enter,309105193,100.00,2.658,M/sec\n\
                   10,,context-switches,309105153,100.00,32.351,/sec\n\
                   309.11,msec,task-clock,309109600,100.00,0.103,CPUs utilized\n";
        let c = parse(out).unwrap();
        assert_eq!((c.syscalls, c.switches), (821596, 10));
        assert!((c.cpu_ms - 309.11).abs() < 1e-9);
        assert_eq!(parse("<not counted>,,raw_syscalls:sys_enter,0,0,,\n"), None);
    }
}
