//! The Markdown report of `meshgw-bench dataplane`: latency per path, the
//! machine's noise, each proxy process's CPU and memory, the targets as
//! ratios to one HAProxy hop, and the CPU each path's proxies spend per
//! request next to HAProxy's (a comparison less exposed to the VM's
//! scheduling noise than tail latency).

use std::fmt::Write as _;

use super::dataplane::{HOST, Opts, PathDef, PathResult, SIDECAR_RSS_TARGET_MIB};
use super::loadgen::pct;
use super::tools::Tools;

/// The ratio of `path`'s added p99 to HAProxy's in each round: the median,
/// and "median× (min× – max×)" for the report; rounds where HAProxy added
/// nothing are left out.
pub(super) fn round_ratios(
    direct: &PathResult,
    path: &PathResult,
    hap: Option<&PathResult>,
) -> (Option<f64>, String) {
    let Some(hap) = hap else {
        return (None, "–".into());
    };
    let mut ratios: Vec<f64> = (0..direct.round_p99.len())
        .filter_map(|r| {
            let d = direct.round_p99.get(r).copied().flatten()? as f64;
            let h = hap.round_p99.get(r).copied().flatten()? as f64 - d;
            let m = path.round_p99.get(r).copied().flatten()? as f64 - d;
            (h > 0.0).then_some(m / h)
        })
        .collect();
    if ratios.is_empty() {
        return (None, "no round with a positive HAProxy added p99".into());
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    let text = format!(
        "{median:.2}× ({:.2}× – {:.2}×, {} of {} rounds)",
        ratios[0],
        ratios[ratios.len() - 1],
        ratios.len(),
        direct.round_p99.len()
    );
    (Some(median), text)
}

fn signed(v: i64) -> String {
    if v > 0 {
        format!("+{v}")
    } else {
        v.to_string()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Renders the Markdown report of one run.
pub(super) fn render(
    opts: &Opts,
    tools: &Tools,
    command: &str,
    log_level: &str,
    paths: &[PathDef],
    names: &[String],
    res: &[PathResult],
) -> String {
    let q = |r: &PathResult, p: f64| r.fixed.pct(p).map(|v| v as i64);
    let direct = &res[0];
    let added = |r: &PathResult, p: f64| Some(q(r, p)? - q(direct, p)?);
    let cell = |v: Option<i64>, sign: bool| match v {
        Some(v) if sign => signed(v),
        Some(v) => v.to_string(),
        None => "–".into(),
    };
    let mut s = String::new();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split_once(':').map_or("", |x| x.1).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let out = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let date = out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let kernel = out("uname", &["-r"]);
    let lifetime = res
        .iter()
        .flat_map(|r| r.fixed_use.iter())
        .any(|u| u.lifetime_peak);

    writeln!(s, "# Benchmarks\n").unwrap();
    writeln!(s, "## Data plane: `meshgw-bench dataplane`\n").unwrap();
    writeln!(
        s,
        "One run on loopback, several paths to the same HTTP app (`GET /download?n={size}`, {size}-byte responses, \
         HTTP/1.1 keep-alive from the client, `Host: {HOST}` on every path):\n\n\
         - **direct**: client → app;\n\
         - **haproxy**: client → HAProxy (`nbthread 1`, one http-mode frontend and backend, keep-alive) → app;\n\
         - **haproxy chain (2 plaintext hops)**, for comparison only: client → HAProxy → HAProxy → app, both as the one above: \
         the least any two proxies on a path can do (no TLS, no HTTP/2, no routing), so its added latency is a floor for \
         the same-cluster path's two sidecars;\n\
         - **haproxy pair (mTLS, h2)**, for comparison only: two HAProxy processes doing what two sidecars do: client → HAProxy front \
         (HTTP/1.1 in; pooled HTTP/2 out over TLS 1.3 with a client certificate) → HAProxy back (verifies it; HTTP/1.1 to the app) → app;\n\
         - **meshgw same cluster**: client → client sidecar (outbound HTTP) → server sidecar (inbound, mTLS, h2) → app;\n\
         - **meshgw cross cluster**: the service runs only in cluster a, the client sidecar is in b: \
         client sidecar → gateway b → QUIC → gateway a → server sidecar → app.\n\n\
         Every proxy runs one thread, as HAProxy does here: sidecars by default, gateways with `[runtime] workers = 1` \
         (their default is one thread per core; one thread uses about 10% less CPU per request at this rate).\n",
        size = opts.size
    )
    .unwrap();
    writeln!(s, "Command (from the workspace root):\n\n```sh\ncargo build --release -p meshgw-gateway -p meshgw-tests\n{command}\n```\n").unwrap();
    writeln!(
        s,
        "Machine: {nproc} CPUs (`nproc`), `{cpu_model}` (/proc/cpuinfo), Linux {kernel}; measured {date}. \
         Everything (client, app, HAProxy, sidecars, gateways, wrk, curl) shares these CPUs. \
         Tools: {}. Proxies log at `{log_level}` (`MESHGW_TEST_LOG`).\n",
        tools.versions().iter().filter(|v| !v.is_empty()).map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
    )
    .unwrap();

    writeln!(s, "### Results\n").unwrap();
    writeln!(
        s,
        "Latency at a fixed {} req/s for {} s per path ({} requests), in {} rounds that take the paths in turn \
         ({} s per path per round, each after {} s of unrecorded warm-up, so a noisy stretch of the machine is shared), µs, \
         measured from each request's intended send time; *added* is the path's percentile minus direct's. \
         Max rate: `wrk -t1 -c{} -d{}s`. Transfer: one `curl -o /dev/null` of {} bytes.\n",
        opts.rate,
        opts.duration,
        opts.rate as u64 * opts.duration,
        opts.rounds,
        opts.duration / opts.rounds,
        opts.warmup,
        opts.wrk_conns,
        opts.wrk_secs,
        opts.transfer
    )
    .unwrap();
    writeln!(s, "| path | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 | failed | max req/s (wrk) | transfer MiB/s |").unwrap();
    writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    .unwrap();
    for (p, r) in paths.iter().zip(res) {
        let failed = r.fixed.errors + r.fixed.timeouts;
        writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0}{} | {} |",
            p.name,
            cell(q(r, 0.50), false),
            cell(q(r, 0.99), false),
            cell(q(r, 0.999), false),
            cell(added(r, 0.50), true),
            cell(added(r, 0.99), true),
            cell(added(r, 0.999), true),
            failed,
            r.wrk.rps,
            if r.wrk.errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.wrk.errors)
            },
            r.transfer
                .map_or("–".into(), |t| format!("{:.0}", t.mib_s())),
        )
        .unwrap();
    }
    writeln!(
        s,
        "\nDuring each fixed-rate phase: the load generator's own release lateness (p99, p99.9; part of every \
         latency above), the CPU seconds every process outside the benchmark used meanwhile (other work on the machine; \
         should be near 0), and the share of CPU time stolen by the hypervisor.\n"
    )
    .unwrap();
    writeln!(
        s,
        "| path | generator late p99 µs | generator late p99.9 µs | other processes CPU s | steal |"
    )
    .unwrap();
    writeln!(s, "| --- | ---: | ---: | ---: | ---: |").unwrap();
    for (p, r) in paths.iter().zip(res) {
        let l = |q: f64| pct(&r.fixed.release_late_us, q).unwrap_or(0);
        writeln!(
            s,
            "| {} | {} | {} | {:.2} | {:.1}% |",
            p.name,
            l(0.99),
            l(0.999),
            r.fixed_others,
            r.fixed_steal * 100.0
        )
        .unwrap();
    }
    for (p, r) in paths.iter().zip(res) {
        if let Some(e) = &r.fixed.first_error {
            writeln!(
                s,
                "\n{}: {} errors, {} timeouts; first error: `{e}`",
                p.name, r.fixed.errors, r.fixed.timeouts
            )
            .unwrap();
        }
    }

    writeln!(s, "\n### Per process\n").unwrap();
    writeln!(
        s,
        "CPU seconds (user + system, every thread) spent by each proxy process during each phase of its path, \
         and its peak RSS (VmHWM{}) during that phase. CPU µs/req is fixed-rate CPU seconds over the {} requests of the phase \
         (warm-up included in neither). The server sidecar and gateway a serve two paths; each row is one path's phases.\n",
        if lifetime { ", could not be reset: peak since start" } else { ", reset before each phase" },
        phase_requests(opts),
    )
    .unwrap();
    writeln!(s, "| path | process | CPU s @{0} req/s | CPU µs/req | peak RSS MiB @{0} req/s | CPU s wrk | peak RSS MiB wrk | CPU s transfer | peak RSS MiB transfer |", opts.rate).unwrap();
    writeln!(
        s,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    .unwrap();
    let reqs = phase_requests(opts) as f64;
    for (p, r) in paths.iter().zip(res) {
        for &i in &p.procs {
            let (f, w) = (r.fixed_use[i], r.wrk_use[i]);
            let t = r.transfer_use.get(i).copied().unwrap_or_default();
            writeln!(
                s,
                "| {} | {} | {:.2} | {:.0} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} |",
                p.name,
                names[i],
                f.cpu_s,
                f.cpu_s * 1e6 / reqs,
                mib(f.peak_rss_kib),
                w.cpu_s,
                mib(w.peak_rss_kib),
                t.cpu_s,
                mib(t.peak_rss_kib)
            )
            .unwrap();
        }
    }

    // Targets, as ratios from this run.
    writeln!(s, "\n### Targets (this run)\n").unwrap();
    writeln!(
        s,
        "*Measured* takes every sample of the run; *per round* is the same ratio within each of the {} \
         fixed-rate rounds (the paths' p99 in that round), as median and range, to show how much of it is the machine's noise. \
         A latency target is met only if both the measured ratio and the median over rounds are within it.\n",
        opts.rounds
    )
    .unwrap();
    writeln!(
        s,
        "| target | measured | met | per round: median (min – max) |"
    )
    .unwrap();
    writeln!(s, "| --- | --- | --- | --- |").unwrap();
    let find = |key: &str| paths.iter().position(|p| p.key == key);
    let hap_index = find("haproxy");
    let hap = hap_index.and_then(|i| added(&res[i], 0.99));
    let targets = [("same", 2.0f64), ("cross", 4.0)];
    for (i, limit) in targets
        .iter()
        .filter_map(|&(k, limit)| Some((find(k)?, limit)))
    {
        let mine = added(&res[i], 0.99);
        let (median, rounds) = round_ratios(direct, &res[i], hap_index.map(|h| &res[h]));
        let (measured, met) = match (mine, hap) {
            (Some(m), Some(h)) if h > 0 => {
                let ratio = m as f64 / h as f64;
                // Met only if the rounds agree: one noisy stretch that
                // inflates HAProxy's tail must not pass a target.
                let ok = ratio <= limit && median.is_some_and(|r| r <= limit);
                (
                    format!("{} µs / {} µs = {ratio:.2}×", signed(m), signed(h)),
                    if ok { "yes" } else { "**no**" },
                )
            }
            (Some(m), Some(h)) => (
                format!(
                    "{} µs / {} µs: HAProxy added nothing measurable, no ratio",
                    signed(m),
                    signed(h)
                ),
                "undetermined",
            ),
            (Some(m), None) => (
                format!(
                    "{} µs; HAProxy was not measured in this run (--paths)",
                    signed(m)
                ),
                "undetermined",
            ),
            _ => ("no samples".into(), "**no**"),
        };
        writeln!(
            s,
            "| {} added p99 ≤ {limit}× HAProxy's added p99 | {measured} | {met} | {rounds} |",
            paths[i].name
        )
        .unwrap();
    }
    for (i, h) in ["haproxy-chain", "haproxy-pair"]
        .iter()
        .filter_map(|k| Some((find(k)?, hap?)))
    {
        let text = match added(&res[i], 0.99) {
            Some(m) if h > 0 => format!(
                "{} µs / {} µs = {:.2}×",
                signed(m),
                signed(h),
                m as f64 / h as f64
            ),
            _ => "–".into(),
        };
        let (_, rounds) = round_ratios(direct, &res[i], hap_index.map(|h| &res[h]));
        writeln!(
            s,
            "| for comparison, not a target: {} added p99 over HAProxy's | {text} | – | {rounds} |",
            paths[i].name
        )
        .unwrap();
    }
    let sidecars: Vec<(usize, usize)> = paths
        .iter()
        .enumerate()
        .flat_map(|(pi, p)| {
            p.procs
                .iter()
                .filter(|&&i| names[i].contains("sidecar"))
                .map(move |&i| (pi, i))
        })
        .collect();
    let (worst_kib, worst) = sidecars
        .iter()
        .map(|&(pi, i)| {
            (
                res[pi].fixed_use[i].peak_rss_kib,
                format!("{} on {}", names[i], paths[pi].name),
            )
        })
        .max()
        .unwrap_or_default();
    writeln!(
        s,
        "| sidecar peak RSS < {SIDECAR_RSS_TARGET_MIB} MiB at {} req/s | {:.1} MiB (largest: {worst}) | {} | |",
        opts.rate,
        mib(worst_kib),
        if mib(worst_kib) < SIDECAR_RSS_TARGET_MIB { "yes" } else { "**no**" }
    )
    .unwrap();

    costs(&mut s, opts, paths, res, &|r, p| added(r, p));

    let mut all_late: Vec<u64> = res
        .iter()
        .flat_map(|r| r.fixed.release_late_us.iter().copied())
        .collect();
    all_late.sort_unstable();
    let late_p = |p: f64| pct(&all_late, p).unwrap_or(0);
    writeln!(s, "\n### How it is measured, and what is approximate\n").unwrap();
    writeln!(
        s,
        "- **Fixed rate** is open loop: a scheduler thread releases request *i* at start + *i*/rate into one queue that {conns} \
         keep-alive hyper HTTP/1.1 connections drain; latency runs from the intended send time to the last body byte, so a \
         stall is charged to every request it delayed (coordinated omission corrected). The scheduler's own lateness is part \
         of every path's latency, direct included (this run: p50 {} µs, p99 {} µs, p99.9 {} µs), and roughly cancels out of *added* (per path in the table above).\n\
         - Percentiles are nearest-rank over {n} samples per path: p99.9 rests on the {tail} slowest requests. On a small shared \
         VM the tails (p99, p99.9) are dominated by scheduling stalls and move by milliseconds between runs; *added* subtracts two such numbers and can come out negative. The ratios in the targets inherit \
         that noise, HAProxy's small added p99 most of all.\n\
         - The client, the app, every proxy, wrk and curl share {nproc} CPUs, so each path's numbers include contention with the \
         load generator and the app; wrk's max rate is the rate of the whole machine, not of one proxy. Direct's max rate and \
         transfer are bounded by the test app (it computes its pattern bytes per byte), not by loopback.\n\
         - CPU time comes from /proc in clock ticks (10 ms), so small values (< 0.1 s) are coarse; the gateways' CPU includes \
         their control plane (heartbeats, catalog), the sidecars' their health checks (every 300 ms).\n\
         - One run, one machine: rerun before quoting a number.\n",
        late_p(0.5),
        late_p(0.99),
        late_p(0.999),
        conns = opts.connections,
        n = opts.rate as u64 * opts.duration,
        tail = (opts.rate as u64 * opts.duration) / 1000,
    )
    .unwrap();
    writeln!(
        s,
        "## Instructions per request: `meshgw-bench instructions`\n\nThe proxies' own work, counted by callgrind, \
         independent of the machine's noise: [instructions.md](instructions.md).\n\n\
         ## System calls and CPU per request: `meshgw-bench syscalls`\n\nThe same paths without valgrind: system calls, \
         context switches and CPU time (user and kernel) of each proxy per request, counted by `perf stat`, with a \
         profile of each process on request: [syscalls.md](syscalls.md).\n\n\
         ## Control plane: `meshgw-bench propagation`\n\nRegister in cluster A until B's catalog Watch reports the import; \
         see ARCHITECTURE.md (Benchmark) for the method and the last numbers:\n\n\
         ```sh\ntarget/release/meshgw-bench propagation --count 200\n```"
    )
    .unwrap();
    s
}

/// Returns the requests of one path's fixed-rate phase, warm-up included
/// (what its CPU seconds were spent on).
fn phase_requests(opts: &Opts) -> u64 {
    opts.rate as u64 * (opts.duration + opts.rounds * opts.warmup)
}

/// Writes, per path, the CPU its proxies spent per request at the fixed
/// rate and its added p50, each over HAProxy's: a proxy's added latency is
/// mostly the CPU it spends on the request's path (its own work and the
/// kernel's on its behalf), and both measures move less with the VM's
/// scheduling stalls than an added p99 does.
fn costs(
    s: &mut String,
    opts: &Opts,
    paths: &[PathDef],
    res: &[PathResult],
    added: &dyn Fn(&PathResult, f64) -> Option<i64>,
) {
    let reqs = phase_requests(opts) as f64;
    let cpu_us = |pi: usize| -> f64 {
        paths[pi]
            .procs
            .iter()
            .map(|&i| res[pi].fixed_use[i].cpu_s * 1e6 / reqs)
            .sum()
    };
    let Some(h) = paths.iter().position(|p| p.key == "haproxy") else {
        return;
    };
    let (hap_cpu, hap_p50) = (cpu_us(h), added(&res[h], 0.5));
    writeln!(
        s,
        "\n### Cost per request, next to one HAProxy hop\n\n\
         CPU µs/req sums the path's proxy processes at {} req/s (table above); a proxy's added latency is mostly the CPU it \
         spends on the request's path, and both columns move less with the VM's stalls than an added p99. The targets' \
         ratios (2× same cluster, 4× cross cluster) are these ratios' budget too: each process on the path may cost what \
         one HAProxy hop costs.\n",
        opts.rate
    )
    .unwrap();
    writeln!(
        s,
        "| path | processes | CPU µs/req | × HAProxy | per process × HAProxy | added p50 × HAProxy's |"
    )
    .unwrap();
    writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: |").unwrap();
    for (pi, p) in paths
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.procs.is_empty())
    {
        let cpu = cpu_us(pi);
        let n = p.procs.len() as f64;
        let p50 = match (added(&res[pi], 0.5), hap_p50) {
            (Some(m), Some(h)) if h > 0 => format!("{:.2}×", m as f64 / h as f64),
            _ => "–".into(),
        };
        let (x, per) = if hap_cpu > 0.0 {
            (
                format!("{:.2}×", cpu / hap_cpu),
                format!("{:.2}×", cpu / hap_cpu / n),
            )
        } else {
            ("–".into(), "–".into())
        };
        writeln!(
            s,
            "| {} | {} | {cpu:.0} | {x} | {per} | {p50} |",
            p.name,
            p.procs.len()
        )
        .unwrap();
    }
    let Some(c) = paths.iter().position(|p| p.key == "haproxy-chain") else {
        return;
    };
    let ratio = |m: Option<i64>, h: Option<i64>| match (m, h) {
        (Some(m), Some(h)) if h > 0 => Some(m as f64 / h as f64),
        _ => None,
    };
    let (p99, p50) = (
        ratio(added(&res[c], 0.99), added(&res[h], 0.99)),
        ratio(added(&res[c], 0.5), hap_p50),
    );
    let x = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.2}×"));
    let (median, _) = round_ratios(&res[0], &res[c], Some(&res[h]));
    let left = match p99 {
        Some(r) if r < 2.0 => format!(
            "The same-cluster target (2×) leaves the two sidecars' mutual TLS and HTTP/2 {:.2}× of one hop's added p99 in this run.",
            2.0 - r
        ),
        Some(_) => "The same-cluster target (2×) leaves the two sidecars' mutual TLS and HTTP/2 nothing in this run: \
                    the floor alone is at or above it."
            .into(),
        None => "HAProxy's added p99 was not positive in this run, so there is no p99 ratio to compare with the \
                 same-cluster target (2×)."
            .into(),
    };
    let cpu = if hap_cpu > 0.0 {
        format!("{:.2}×", cpu_us(c) / hap_cpu)
    } else {
        "–".into()
    };
    writeln!(
        s,
        "\nThe floor for any two proxies: the two plaintext HAProxy hops, which do none of the sidecars' TLS, HTTP/2 or \
         routing, added {} one hop's p99 (per-round median {}) and {} its p50, and spent {cpu} its CPU per request. {left}",
        x(p99),
        x(median),
        x(p50)
    )
    .unwrap();
}

#[cfg(test)]
mod tests {
    use super::super::procs::Usage;
    use super::*;

    fn rounds(p99: &[u64]) -> PathResult {
        PathResult {
            round_p99: p99.iter().map(|&v| Some(v)).collect(),
            ..PathResult::default()
        }
    }

    #[test]
    fn per_round_ratios_take_the_median_and_skip_rounds_where_haproxy_added_nothing() {
        let direct = rounds(&[100, 100, 100, 500]);
        let hap = rounds(&[200, 150, 300, 400]);
        let mesh = rounds(&[300, 300, 900, 2000]);
        let (median, text) = round_ratios(&direct, &mesh, Some(&hap));
        // Rounds 1-3: 2/1, 4/1 (200/50), 8/2 = 4; round 4 (HAProxy below direct) is left out.
        assert_eq!(median, Some(4.0));
        assert!(text.contains("2.00× – 4.00×, 3 of 4 rounds"), "{text}");
        assert_eq!(round_ratios(&direct, &mesh, None).0, None);
        let flat = rounds(&[100, 100, 100, 500]);
        assert_eq!(round_ratios(&direct, &mesh, Some(&flat)).0, None);
    }

    #[test]
    fn costs_sum_each_paths_processes_and_divide_by_haproxys() {
        let opts = Opts {
            rate: 100,
            duration: 8,
            warmup: 1,
            rounds: 2,
            ..Opts::default()
        };
        // 100 req/s over 8 + 2 × 1 s: 1000 requests per path.
        let addr = "127.0.0.1:1".parse().unwrap();
        let path = |key, name, procs| PathDef {
            key,
            name,
            addr,
            procs,
        };
        let paths = [
            path("direct", "direct", vec![]),
            path("haproxy", "haproxy", vec![0]),
            path("same", "meshgw same cluster", vec![1, 2]),
            path("haproxy-chain", "haproxy chain", vec![3, 4]),
        ];
        let used = |cpu: &[f64]| PathResult {
            fixed_use: cpu
                .iter()
                .map(|&cpu_s| Usage {
                    cpu_s,
                    ..Usage::default()
                })
                .collect(),
            ..PathResult::default()
        };
        // HAProxy 0.1 s (100 µs/req); the sidecars 0.12 s and 0.13 s; the chain 0.09 s each.
        let res = [
            used(&[0.0; 5]),
            used(&[0.1, 0.0, 0.0, 0.0, 0.0]),
            used(&[0.0, 0.12, 0.13, 0.0, 0.0]),
            used(&[0.0, 0.0, 0.0, 0.09, 0.09]),
        ];
        // Added latency: HAProxy (the only path whose process 0 ran) 50 µs,
        // the chain 100 µs at p50 and 90 µs at p99, the mesh 150 µs.
        let p50 = |r: &PathResult, p: f64| {
            Some(if r.fixed_use[0].cpu_s > 0.0 {
                50
            } else if r.fixed_use[3].cpu_s > 0.0 {
                if p > 0.5 { 90 } else { 100 }
            } else {
                150
            })
        };
        let mut s = String::new();
        costs(&mut s, &opts, &paths, &res, &p50);
        assert!(
            s.contains("| haproxy | 1 | 100 | 1.00× | 1.00× | 1.00× |"),
            "{s}"
        );
        assert!(
            s.contains("| meshgw same cluster | 2 | 250 | 2.50× | 1.25× | 3.00× |"),
            "{s}"
        );
        assert!(!s.contains("| direct |"), "direct has no proxy: {s}");
        assert!(
            s.contains("added 1.80× one hop's p99 (per-round median –) and 2.00× its p50, and spent 1.80× its CPU"),
            "{s}"
        );
        assert!(
            s.contains(
                "leaves the two sidecars' mutual TLS and HTTP/2 0.20× of one hop's added p99"
            ),
            "{s}"
        );
    }
}
