//! How a workload is timed: closed-loop clients for a while, work spread over a pool, or rounds
//! one after the other; latencies per operation, and the server processes' CPU time and peak
//! resident memory (from /proc) over the same span.

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// One row of the results: a workload at one concurrency against one setup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub label: String,
    pub workload: String,
    pub clients: usize,
    pub ops: u64,
    pub errors: u64,
    pub seconds: f64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Server CPU time over the span, in cores (1.0 = one core busy throughout).
    pub cpu_cores: Option<f64>,
    /// The server processes' resident memory, summed, at its peak during the span.
    pub rss_mib: Option<f64>,
}

pub struct Measured {
    label: String,
    pids: Vec<u32>,
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Measured {
    pub fn new(label: &str, pids: &[u32]) -> Self {
        Self {
            label: label.to_string(),
            pids: pids.to_vec(),
        }
    }

    /// `clients` loops calling `op(client, i)` until `duration` is over.
    pub async fn closed_loop<F, Fut>(
        &self,
        workload: &str,
        clients: usize,
        duration: Duration,
        op: F,
    ) -> Result<Outcome>
    where
        F: Fn(u64, u64) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let span = Span::start(&self.pids);
        let tasks: Vec<_> = (0..clients as u64)
            .map(|c| {
                let (op, stop) = (op.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut latencies, mut errors, mut i) = (Vec::new(), 0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        match op(c, i).await {
                            Ok(()) => latencies.push(started.elapsed()),
                            Err(_) => errors += 1,
                        }
                        i += 1;
                    }
                    (latencies, errors)
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let (mut latencies, mut errors) = (Vec::new(), 0);
        for task in tasks {
            let (l, e) = task.await?;
            latencies.extend(l);
            errors += e;
        }
        Ok(self.outcome(workload, clients, span.finish().await, latencies, errors))
    }

    /// Calls `op(n)` for every `n` of `range`, `concurrency` at a time.
    pub async fn spread<F, Fut>(
        &self,
        workload: &str,
        concurrency: usize,
        range: Range<u64>,
        op: F,
    ) -> Result<Outcome>
    where
        F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = Result<()>> + Send,
    {
        let next = Arc::new(AtomicU64::new(range.start));
        let span = Span::start(&self.pids);
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (op, next, end) = (op.clone(), next.clone(), range.end);
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= end {
                            return Ok::<_, anyhow::Error>(latencies);
                        }
                        let started = Instant::now();
                        op(n).await?;
                        latencies.push(started.elapsed());
                    }
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await??);
        }
        Ok(self.outcome(workload, concurrency, span.finish().await, latencies, 0))
    }

    /// `rounds` calls of `op(round)`, one after the other; every one must succeed.
    pub async fn rounds<F, Fut>(&self, workload: &str, rounds: u64, op: F) -> Result<Outcome>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        self.timed_rounds(workload, rounds, |round| {
            let started = Instant::now();
            let done = op(round);
            async move { done.await.map(|()| started.elapsed()) }
        })
        .await
    }

    /// Like `rounds`, but each round times itself (its set-up is not counted).
    pub async fn timed_rounds<F, Fut>(&self, workload: &str, rounds: u64, op: F) -> Result<Outcome>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<Duration>>,
    {
        let span = Span::start(&self.pids);
        let mut latencies = Vec::with_capacity(rounds as usize);
        for round in 0..rounds {
            latencies.push(op(round).await?);
        }
        Ok(self.outcome(workload, 1, span.finish().await, latencies, 0))
    }

    fn outcome(
        &self,
        workload: &str,
        clients: usize,
        usage: Usage,
        mut latencies: Vec<Duration>,
        errors: u64,
    ) -> Outcome {
        latencies.sort_unstable();
        let ops = latencies.len() as u64;
        Outcome {
            label: self.label.clone(),
            workload: workload.to_string(),
            clients,
            ops,
            errors,
            seconds: usage.elapsed.as_secs_f64(),
            per_sec: ops as f64 / usage.elapsed.as_secs_f64().max(1e-9),
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
            cpu_cores: usage.cpu_cores,
            rss_mib: usage.rss_mib,
        }
    }
}

pub fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at].as_secs_f64() * 1000.0
}

/// The servers' CPU time at the start, and a sampler of their resident memory.
struct Span {
    started: Instant,
    pids: Vec<u32>,
    cpu_ns: Option<u64>,
    peak: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

struct Usage {
    elapsed: Duration,
    cpu_cores: Option<f64>,
    rss_mib: Option<f64>,
}

impl Span {
    fn start(pids: &[u32]) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let sampler = {
            let (pids, peak, sampling) = (pids.to_vec(), peak.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_kib(&pids) {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Self {
            started: Instant::now(),
            pids: pids.to_vec(),
            cpu_ns: cpu_ns(pids),
            peak,
            sampling,
            sampler,
        }
    }

    async fn finish(self) -> Usage {
        let elapsed = self.started.elapsed();
        let cpu_ns = cpu_ns(&self.pids);
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.sampler.await;
        if let Some(rss) = rss_kib(&self.pids) {
            self.peak.fetch_max(rss, Ordering::Relaxed);
        }
        let cpu_cores = match (self.cpu_ns, cpu_ns) {
            (Some(before), Some(after)) => {
                Some(after.saturating_sub(before) as f64 / 1e9 / elapsed.as_secs_f64())
            }
            _ => None,
        };
        let peak = self.peak.load(Ordering::Relaxed);
        Usage {
            elapsed,
            cpu_cores,
            rss_mib: (peak > 0).then(|| peak as f64 / 1024.0),
        }
    }
}

/// On-CPU time of every thread of every process, user and system, in nanoseconds (the
/// scheduler's own count, where /proc's utime and stime come in 10 ms ticks and would read a 10 ms
/// row as 0 or 1 core). `None` without processes or when one is gone. A thread that ends within
/// the span takes its time with it; servers keep theirs.
fn cpu_ns(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(0u64, |sum, pid| {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let ns: u64 = threads.flatten().filter_map(|t| thread_ns(&t.path())).sum();
        Some(sum + ns)
    })
}

/// The first field of a thread's `schedstat`: time spent on a CPU, in nanoseconds.
fn thread_ns(thread: &std::path::Path) -> Option<u64> {
    let schedstat = std::fs::read_to_string(thread.join("schedstat")).ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

fn rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(0u64, |sum, pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(sum + kib)
    })
}

/// Fails unless every operation of a workload succeeded.
pub fn all_succeeded(outcome: &Outcome) -> Result<()> {
    ensure!(outcome.errors == 0, "{} operations failed", outcome.errors);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_counts_other_threads_to_the_millisecond() {
        let me = [std::process::id()];
        let before = cpu_ns(&me).expect("this process");
        let (spun, done) = std::sync::mpsc::channel();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let spinner = std::thread::spawn(move || {
            // 30 ms of its own CPU time, however busy the machine is.
            let own = || thread_ns(std::path::Path::new("/proc/thread-self")).expect("schedstat");
            let start = own();
            while own() - start < 30_000_000 {
                std::hint::spin_loop();
            }
            spun.send(()).expect("test waits");
            let _ = finished.recv();
        });
        done.recv().expect("spinner spun");
        let busy = Duration::from_nanos(cpu_ns(&me).expect("this process") - before);
        finish.send(()).expect("spinner waits");
        spinner.join().expect("spinner");
        assert!(busy >= Duration::from_millis(30), "{busy:?}");
        assert!(cpu_ns(&[]).is_none());
    }

    #[test]
    fn percentiles_pick_the_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted[..1], 0.99), 1.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        assert!(rss_kib(&[me]).is_some_and(|kib| kib > 0));
        assert!(cpu_ns(&[me]).is_some());
    }

    #[tokio::test]
    async fn a_closed_loop_counts_operations_and_errors() {
        let measured = Measured::new("test", &[std::process::id()]);
        let outcome = measured
            .closed_loop("op", 4, Duration::from_millis(200), |c, i| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                anyhow::ensure!(c != 0 || i % 2 == 0, "every other call of client 0 fails");
                Ok(())
            })
            .await
            .expect("run");
        assert!(outcome.ops > 20, "{outcome:?}");
        assert!(outcome.errors > 5, "{outcome:?}");
        assert!(outcome.p50_ms >= 1.0, "{outcome:?}");
        assert!(outcome.cpu_cores.is_some() && outcome.rss_mib.is_some());
        assert!(all_succeeded(&outcome).is_err());
    }
}
