//! `/metrics`: the Prometheus text exposition of the proxy's counters, the app's lifecycle and
//! the process metrics of ancm and of the app's processes. Values are read once per scrape;
//! prometheus-client writes them out.

use std::collections::HashMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::journal::{Entries, EXIT_CAUSES};
use super::processes::Usage;
use super::Observed;
use crate::proxy::stats::{self, Snapshot, CLASSES, PROTOCOLS};
use crate::supervisor::Phase;

/// The content type of the Prometheus text format.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What one scrape shows, read before it is written out.
#[derive(Debug)]
struct Scrape {
    proxy: Snapshot,
    journal: Entries,
    ready: i64,
    own: Option<Usage>,
    /// `(slot, pid, usage)` of each ready app process.
    apps: Vec<(usize, u32, Usage)>,
}

impl Observed {
    /// The metrics now, in the Prometheus text format. Blocking: it reads the process table.
    pub(crate) fn metrics(&self) -> Result<String, std::fmt::Error> {
        let slots = self.slots_now();
        let usage: HashMap<u32, Usage> = self.usage(&slots);
        let mut ready = 0;
        let mut apps = Vec::new();
        for (slot, now) in slots.iter().enumerate() {
            if let Phase::Ready(backend) = &now.phase {
                ready += 1;
                if let Some(used) = usage.get(&backend.pid) {
                    apps.push((slot, backend.pid, *used));
                }
            }
        }
        let scrape = Scrape {
            proxy: stats::STATS.snapshot(),
            journal: self.journal.entries(),
            ready,
            own: usage.get(&std::process::id()).copied(),
            apps,
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(scrape));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric,
{
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let proxy = &self.proxy;
        {
            let mut family = encoder.encode_descriptor(
                "ancm_requests",
                "Requests answered, by front protocol and status class.",
                None,
                MetricType::Counter,
            )?;
            for (protocol, row) in PROTOCOLS.iter().zip(&proxy.requests) {
                for (class, &value) in CLASSES.iter().zip(row) {
                    let labels = [("protocol", *protocol), ("class", *class)];
                    ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        encoder
            .encode_descriptor(
                "ancm_request_duration_seconds",
                "Time from a request's head to the end of its response.",
                None,
                MetricType::Histogram,
            )?
            .encode_histogram::<NoLabelSet>(
                proxy.duration_sum,
                proxy.duration_count,
                &proxy.duration_buckets,
                None,
            )?;
        gauge(
            &mut encoder,
            "ancm_requests_in_flight",
            "Requests in progress on the front.",
            proxy.in_flight,
        )?;
        counter(
            &mut encoder,
            "ancm_request_body_bytes",
            "Request body bytes received from clients.",
            proxy.bytes_in,
        )?;
        counter(
            &mut encoder,
            "ancm_response_body_bytes",
            "Response body bytes sent to clients.",
            proxy.bytes_out,
        )?;
        counter(
            &mut encoder,
            "ancm_upstream_connect_failures",
            "Connections to the app that failed.",
            proxy.connect_failures,
        )?;
        counter(
            &mut encoder,
            "ancm_upstream_timeouts",
            "Requests the app did not answer within requestTimeout.",
            proxy.timeouts,
        )?;

        let journal = &self.journal;
        counter(
            &mut encoder,
            "ancm_app_starts",
            "App process starts.",
            journal.starts,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "ancm_app_exits",
                "App processes that exited or failed to start, by cause.",
                None,
                MetricType::Counter,
            )?;
            for (cause, &value) in EXIT_CAUSES.iter().zip(&journal.exits) {
                ConstCounter::new(value).encode(family.encode_family(&[("cause", *cause)])?)?;
            }
        }
        counter(
            &mut encoder,
            "ancm_app_restarts",
            "App process starts after the first one.",
            journal.restarts,
        )?;
        counter(
            &mut encoder,
            "ancm_app_recycles",
            "Recycles (a new process replacing a running one).",
            journal.recycles,
        )?;
        counter(
            &mut encoder,
            "ancm_app_rapid_fail_pauses",
            "Times starts paused for reaching rapidFailsPerMinute.",
            journal.pauses,
        )?;
        gauge(
            &mut encoder,
            "ancm_app_up",
            "App processes ready to serve.",
            self.ready,
        )?;
        {
            let mut family = encoder.encode_descriptor(
                "ancm_app_resident_memory_bytes",
                "Resident memory of each ready app process.",
                None,
                MetricType::Gauge,
            )?;
            for (slot, pid, used) in &self.apps {
                let labels = [("slot", slot.to_string()), ("pid", pid.to_string())];
                ConstGauge::new(i64::try_from(used.rss_bytes).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        {
            let mut family = encoder.encode_descriptor(
                "ancm_app_cpu_seconds",
                "CPU time of each ready app process.",
                None,
                MetricType::Counter,
            )?;
            for (slot, pid, used) in &self.apps {
                let labels = [("slot", slot.to_string()), ("pid", pid.to_string())];
                ConstCounter::new(used.cpu_seconds).encode(family.encode_family(&labels)?)?;
            }
        }

        // ancm's own, under the names every Prometheus client library uses.
        if let Some(own) = &self.own {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory of ancm.",
                i64::try_from(own.rss_bytes).unwrap_or(i64::MAX),
            )?;
            let cpu = ConstCounter::new(own.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "CPU time of ancm.",
                None,
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut encoder,
                "process_start_time_seconds",
                "When ancm started, in seconds since the Unix epoch.",
                i64::try_from(own.start_time).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }
}
