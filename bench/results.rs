//! Samples by series, and their summaries.

use std::collections::BTreeMap;

/// The samples and failed runs of one series (e.g. `cold.3.bootstrap`, seconds).
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub samples: Vec<f64>,
    pub failures: Vec<String>,
}

/// Median, min and max of a series.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some(Summary { n, median, min: v[0], max: v[n - 1] })
}

/// Everything measured in one run of the benchmark.
#[derive(Debug, Default)]
pub struct Results {
    series: BTreeMap<String, Series>,
}

impl Results {
    pub fn add(&mut self, key: &str, value: f64) {
        self.series.entry(key.to_string()).or_default().samples.push(value);
    }

    pub fn fail(&mut self, key: &str, why: impl Into<String>) {
        let why = why.into();
        eprintln!("  FAILED {key}: {}", why.lines().next().unwrap_or(""));
        self.series.entry(key.to_string()).or_default().failures.push(why);
    }

    pub fn get(&self, key: &str) -> Option<&Series> {
        self.series.get(key)
    }

    pub fn summary(&self, key: &str) -> Option<Summary> {
        self.get(key).and_then(|s| summarize(&s.samples))
    }

    pub fn median(&self, key: &str) -> Option<f64> {
        self.summary(key).map(|s| s.median)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &Series)> {
        self.series.iter()
    }

    /// Add the series of a results file of `bench/run-backup.sh` (`key<TAB>samples` lines; `#`
    /// lines are comments). Returns the first comment (when and where it was measured), or None
    /// when there is no such file.
    pub fn load_tsv(&mut self, path: &std::path::Path) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut note = String::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix('#') {
                if note.is_empty() {
                    note = comment.trim().to_string();
                }
                continue;
            }
            let Some((key, samples)) = line.split_once('\t') else { continue };
            for v in samples.split_whitespace() {
                match v.parse::<f64>() {
                    Ok(v) => self.add(key.trim(), v),
                    Err(_) => self.fail(key.trim(), format!("{}: not a number: {v}", path.display())),
                }
            }
        }
        Some(note)
    }
}
