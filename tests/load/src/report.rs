//! What a worker measures and how the parent merges the workers' figures into one report.
//!
//! Histograms cross the process boundary as `(value, count)` pairs so the parent can rebuild
//! them exactly without a binary serialisation format.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest value (µs) a histogram tracks; larger samples are clamped to it.
const HIST_MAX_US: u64 = 60_000_000;

/// A fresh microsecond histogram (1 µs … 60 s, 3 significant digits).
pub fn new_hist() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; failure would be a programming error.
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// Records one sample, clamped into the tracked range.
pub fn record(h: &mut Histogram<u64>, us: u64) {
    h.saturating_record(us.clamp(1, HIST_MAX_US));
}

/// A histogram in a form JSON can carry.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistData(pub Vec<(u64, u64)>);

impl HistData {
    /// Flattens a histogram.
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        HistData(h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
    }

    /// Adds these samples to `h`.
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(value, count) in &self.0 {
            // Values came out of a histogram with the same bounds.
            let _ = h.record_n(value.clamp(1, HIST_MAX_US), count);
        }
    }
}

/// The connect phase of one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ready {
    /// Connections that completed the handshake (and the join, when rooms are used).
    pub connected: u64,
    /// Connections that failed, with the first few reasons.
    pub connect_errors: u64,
    /// A sample of error messages.
    pub error_samples: Vec<String>,
    /// Connect → first server frame (µs).
    pub connect_us: HistData,
    /// Wall time of the whole connect phase (s).
    pub connect_phase_s: f64,
}

/// The run phase of one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Done {
    /// Messages sent inside the measurement window.
    pub sent: u64,
    /// Chat frames received inside the measurement window.
    pub delivered: u64,
    /// Length of the measurement window (s).
    pub window_s: f64,
    /// Send → receive latency of deliveries in the window (µs).
    pub latency_us: HistData,
    /// Connections still open at the end of the run.
    pub held: u64,
    /// Connections lost during the run (closed by the server or failed).
    pub lost: u64,
    /// Churn: completed connect+disconnect cycles in the window.
    pub cycles: u64,
    /// Churn: failed cycles.
    pub cycle_errors: u64,
    /// Churn: connect time of each cycle (µs).
    pub cycle_connect_us: HistData,
    /// CPU time this worker used during the run (s).
    pub client_cpu_s: f64,
    /// A sample of error messages.
    pub error_samples: Vec<String>,
}

/// One line a worker prints on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum WorkerLine {
    /// Connections are up; waiting for `go`.
    Ready(Ready),
    /// The run is over; waiting for `exit`.
    Done(Done),
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pcts {
    /// Number of samples.
    pub count: u64,
    /// Median (ms).
    pub p50: f64,
    /// 99th percentile (ms).
    pub p99: f64,
    /// 99.9th percentile (ms).
    pub p999: f64,
    /// Maximum (ms).
    pub max: f64,
}

impl Pcts {
    /// Summarises a microsecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Pcts::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Pcts {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The merged report of one run, printed by the parent (as JSON with `--json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Wire dialect.
    pub dialect: String,
    /// Connections asked for.
    pub requested: u64,
    /// Connections that came up.
    pub connected: u64,
    /// Connections that failed to come up.
    pub connect_errors: u64,
    /// Connections still open at the end.
    pub held: u64,
    /// Connections lost during the run.
    pub lost: u64,
    /// Connect-phase wall time (s), the slowest worker.
    pub connect_phase_s: f64,
    /// Connect time percentiles.
    pub connect: Pcts,
    /// Sends per second in the window.
    pub sent_per_s: f64,
    /// Deliveries per second in the window, counted by receivers.
    pub delivered_per_s: f64,
    /// Send → receive latency.
    pub latency: Pcts,
    /// Churn: cycles per second.
    pub cycles_per_s: f64,
    /// Churn: failed cycles.
    pub cycle_errors: u64,
    /// Churn: connect time per cycle.
    pub cycle_connect: Pcts,
    /// Server RSS before any connection (KiB).
    pub rss_before_kib: Option<u64>,
    /// Server RSS with all connections up, after settling (KiB).
    pub rss_connected_kib: Option<u64>,
    /// Server RSS after the run (KiB).
    pub rss_after_kib: Option<u64>,
    /// (connected − before) / connections (bytes).
    pub rss_per_conn_bytes: Option<f64>,
    /// Server CPU time used during the run (s of CPU per s of wall), from /proc.
    pub server_cpu: Option<f64>,
    /// Server CPU time per delivered message (µs): how much work one delivery costs,
    /// which stays meaningful when other processes compete for the CPU.
    pub server_cpu_us_per_delivery: Option<f64>,
    /// The generator's CPU time during the run (s of CPU per s of wall), all workers.
    pub client_cpu: f64,
    /// Load average (1 min) of the machine at the end of the run.
    pub loadavg: f64,
    /// A sample of error messages.
    pub error_samples: Vec<String>,
}
