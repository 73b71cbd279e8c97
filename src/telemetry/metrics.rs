//! `/metrics` exposition through `prometheus-client`.
//!
//! deja's counters live with the state they count (atomics in the cache, the pools, the
//! embedder); a scrape reads them into a [`Scrape`] of families and hands it to
//! prometheus-client's text encoder (OpenMetrics text, which Prometheus reads). Labels
//! are low-cardinality by construction: outcomes, reasons, provider ids and key
//! positions, never prompts, paths or key values.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The content type of [`Scrape::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label pairs of one sample.
pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family: a name (counters without their `_total`, which the encoder
/// adds), help text and samples.
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Labels, u64)>,
}

/// The values read at one scrape.
#[derive(Debug, Default)]
pub struct Scrape {
    families: Vec<Family>,
}

impl Scrape {
    /// A counter family (`name` without `_total`).
    pub fn counter(&mut self, name: &'static str, help: &'static str, samples: Vec<(Labels, u64)>) {
        self.families.push(Family {
            name,
            help,
            kind: Kind::Counter,
            samples,
        });
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &'static str, help: &'static str, samples: Vec<(Labels, u64)>) {
        self.families.push(Family {
            name,
            help,
            kind: Kind::Gauge,
            samples,
        });
    }

    /// The exposition text.
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            match f.samples.as_slice() {
                // One unlabelled sample: no `{}` after the name.
                [(labels, v)] if labels.is_empty() => put(f.kind, *v, family)?,
                samples => {
                    for (labels, v) in samples {
                        let labels: Vec<(&str, &str)> =
                            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        put(f.kind, *v, family.encode_family(&labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn put(kind: Kind, v: u64, sample: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
    match kind {
        Kind::Counter => ConstCounter::new(v).encode(sample),
        Kind::Gauge => ConstGauge::new(v as i64).encode(sample),
    }
}

/// One unlabelled sample.
pub fn single(value: u64) -> Vec<(Labels, u64)> {
    vec![(Vec::new(), value)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_encode_as_prometheus_text_with_labels_and_totals() {
        let mut s = Scrape::default();
        s.counter(
            "deja_cache_lookups",
            "Requests by cache outcome.",
            vec![
                (vec![("result", "hit_exact".into())], 3),
                (vec![("result", "miss".into())], 1),
            ],
        );
        s.gauge("deja_cache_entries", "Live entries.", single(7));
        let text = s.encode();
        assert!(text.contains("# TYPE deja_cache_lookups counter"), "{text}");
        assert!(
            text.contains("deja_cache_lookups_total{result=\"hit_exact\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("deja_cache_lookups_total{result=\"miss\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE deja_cache_entries gauge"), "{text}");
        assert!(text.contains("\ndeja_cache_entries 7\n"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
