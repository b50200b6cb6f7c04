//! Process CPU, memory and file descriptors, read from `/proc/self` at scrape
//! time, under the names every Prometheus client library uses:
//!
//! | metric | type | source |
//! | --- | --- | --- |
//! | `process_cpu_seconds_total` | counter | `/proc/self/stat` utime + stime |
//! | `process_resident_memory_bytes` | gauge | `/proc/self/status` `VmRSS` |
//! | `process_virtual_memory_bytes` | gauge | `/proc/self/stat` vsize |
//! | `process_open_fds` | gauge | entries of `/proc/self/fd` |
//! | `process_max_fds` | gauge | `/proc/self/limits` "Max open files" soft limit |
//! | `process_start_time_seconds` | gauge | `/proc/self/stat` starttime + `btime` of `/proc/stat` |
//!
//! CPU ticks are converted at `USER_HZ` = 100, the value the kernel exposes
//! to user space on all mainstream architectures. A value that cannot be read
//! is left out of the scrape (logged at debug level); on systems other than
//! Linux nothing is exported.

use prometheus_client::registry::Registry;

/// Registers the process collector in `registry` (a no-op off Linux).
pub fn register(registry: &mut Registry) {
    #[cfg(target_os = "linux")]
    registry.register_collector(Box::new(linux::ProcessCollector));
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

/// One reading of the process metrics; `None` where a value could not be read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set size, in bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size, in bytes.
    pub virtual_memory_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// Soft limit on open file descriptors.
    pub max_fds: Option<u64>,
    /// Process start, in seconds since the Unix epoch.
    pub start_time_seconds: Option<f64>,
}

/// Reads the current process's stats (all `None` off Linux).
pub fn read_stats() -> ProcessStats {
    #[cfg(target_os = "linux")]
    {
        linux::read()
    }
    #[cfg(not(target_os = "linux"))]
    {
        ProcessStats::default()
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::ProcessStats;
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    /// Kernel clock ticks per second as exposed to user space.
    const USER_HZ: f64 = 100.0;

    #[derive(Debug)]
    pub(super) struct ProcessCollector;

    /// Fields of `/proc/self/stat` after the `(comm)` field, 0-based: the
    /// state (field 3 in `man proc`) is index 0.
    const UTIME: usize = 14 - 3;
    const STIME: usize = 15 - 3;
    const STARTTIME: usize = 22 - 3;
    const VSIZE: usize = 23 - 3;

    fn stat_fields(stat: &str) -> Option<Vec<&str>> {
        // `comm` may hold spaces and parentheses: split after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        Some(rest.split_whitespace().collect())
    }

    fn field<T: std::str::FromStr>(fields: &[&str], i: usize) -> Option<T> {
        fields.get(i)?.parse().ok()
    }

    fn read_file(path: &str) -> Option<String> {
        match std::fs::read_to_string(path) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(path, error = %e, "process metrics: cannot read");
                None
            }
        }
    }

    /// `Key:   123 kB` line of `/proc/self/status`, in bytes.
    pub(super) fn status_kb(status: &str, key: &str) -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = line[key.len()..]
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        kb.checked_mul(1024)
    }

    fn boot_time(proc_stat: &str) -> Option<f64> {
        proc_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    }

    fn max_fds(limits: &str) -> Option<u64> {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line["Max open files".len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    pub(super) fn read() -> ProcessStats {
        let mut stats = ProcessStats::default();
        if let Some(stat) = read_file("/proc/self/stat")
            && let Some(f) = stat_fields(&stat)
        {
            let ticks = field::<u64>(&f, UTIME).zip(field::<u64>(&f, STIME));
            stats.cpu_seconds = ticks.map(|(u, s)| (u + s) as f64 / USER_HZ);
            stats.virtual_memory_bytes = field(&f, VSIZE);
            let start_ticks = field::<u64>(&f, STARTTIME);
            let boot = read_file("/proc/stat").and_then(|s| boot_time(&s));
            stats.start_time_seconds = start_ticks.zip(boot).map(|(t, b)| b + t as f64 / USER_HZ);
        }
        stats.resident_memory_bytes =
            read_file("/proc/self/status").and_then(|s| status_kb(&s, "VmRSS"));
        stats.max_fds = read_file("/proc/self/limits").and_then(|s| max_fds(&s));
        stats.open_fds = match std::fs::read_dir("/proc/self/fd") {
            // The directory handle itself is one of the entries.
            Ok(dir) => Some(dir.count().saturating_sub(1) as u64),
            Err(e) => {
                tracing::debug!(error = %e, "process metrics: cannot list /proc/self/fd");
                None
            }
        };
        stats
    }

    fn gauge(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        value: Option<f64>,
    ) -> Result<(), std::fmt::Error> {
        if let Some(v) = value {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }

    impl Collector for ProcessCollector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let s = read();
            if let Some(cpu) = s.cpu_seconds {
                let c = ConstCounter::new(cpu);
                let help = "Total user and system CPU time spent in seconds";
                c.encode(encoder.encode_descriptor(
                    "process_cpu_seconds",
                    help,
                    None,
                    c.metric_type(),
                )?)?;
            }
            let e = &mut encoder;
            let rss = s.resident_memory_bytes.map(|v| v as f64);
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                rss,
            )?;
            let vsz = s.virtual_memory_bytes.map(|v| v as f64);
            gauge(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                vsz,
            )?;
            let fds = s.open_fds.map(|v| v as f64);
            gauge(
                e,
                "process_open_fds",
                "Number of open file descriptors",
                fds,
            )?;
            let max = s.max_fds.map(|v| v as f64);
            gauge(
                e,
                "process_max_fds",
                "Maximum number of open file descriptors",
                max,
            )?;
            let start = s.start_time_seconds;
            let help = "Start time of the process since unix epoch in seconds";
            gauge(e, "process_start_time_seconds", help, start)
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn values_are_plausible() {
        // Burn a little CPU so the counter has something to show.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        let s = read_stats();
        assert!(s.cpu_seconds.unwrap() >= 0.0);
        assert!(s.resident_memory_bytes.unwrap() > 1 << 20);
        assert!(s.virtual_memory_bytes.unwrap() >= s.resident_memory_bytes.unwrap());
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.max_fds.unwrap() >= s.open_fds.unwrap());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = s.start_time_seconds.unwrap();
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "start={start} now={now}"
        );
    }

    #[test]
    fn collector_encodes_standard_names() {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("# TYPE process_cpu_seconds counter\n"));
        assert!(out.contains("\nprocess_cpu_seconds_total "));
        for name in [
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                out.contains(&format!("# TYPE {name} gauge\n")),
                "{name}: {out}"
            );
            assert!(out.contains(&format!("\n{name} ")), "{name}");
        }
    }

    #[test]
    fn status_parsing() {
        let status = "Name:\tx\nVmRSS:\t    2048 kB\n";
        assert_eq!(linux::status_kb(status, "VmRSS"), Some(2048 * 1024));
        assert_eq!(linux::status_kb(status, "VmSwap"), None);
    }
}
