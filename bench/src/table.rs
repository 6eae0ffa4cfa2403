//! Timed samples per label, ratios of medians against peers, goals with pass/short, and
//! the Markdown and JSON they are reported in.

use std::time::Instant;

use serde::Serialize;

use crate::quantile;

/// One measured thing: seconds per sample and how to show a rate.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub what: String,
    pub seconds: Vec<f64>,
    /// Bytes moved per sample (for MB/s), when it is a transfer.
    pub bytes: Option<u64>,
    /// Operations per sample (for µs/op), when it is many small ones.
    pub ops: Option<u64>,
}

/// A goal checked against the run.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub name: String,
    pub value: f64,
    pub target: String,
    pub pass: bool,
}

/// A workload's results.
#[derive(Debug, Default, Serialize)]
pub struct Table {
    pub title: String,
    pub series: Vec<Series>,
    pub goals: Vec<Goal>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            ..Self::default()
        }
    }

    /// Times `run` under `what`; panics with the label if it fails (a benchmark whose
    /// peer broke must not report a number).
    pub fn time(
        &mut self,
        what: &str,
        bytes: Option<u64>,
        ops: Option<u64>,
        run: impl FnOnce() -> anyhow::Result<()>,
    ) {
        let started = Instant::now();
        if let Err(e) = run() {
            panic!("{what}: {e:#}");
        }
        self.record(what, bytes, ops, started.elapsed().as_secs_f64());
    }

    /// Adds a sample measured elsewhere.
    pub fn record(&mut self, what: &str, bytes: Option<u64>, ops: Option<u64>, secs: f64) {
        match self.series.iter_mut().find(|s| s.what == what) {
            Some(series) => series.seconds.push(secs),
            None => self.series.push(Series {
                what: what.to_owned(),
                seconds: vec![secs],
                bytes,
                ops,
            }),
        }
    }

    /// Median seconds of a series (NaN if absent).
    pub fn median(&self, what: &str) -> f64 {
        self.series
            .iter()
            .find(|s| s.what == what)
            .map_or(f64::NAN, |s| quantile(&s.seconds, 0.5))
    }

    /// Goal: ours / theirs (medians of time) at most `max`.
    pub fn ratio_goal(&mut self, ours: &str, theirs: &str, max: f64) {
        let value = self.median(ours) / self.median(theirs);
        self.goals.push(Goal {
            name: format!("{ours} / {theirs}"),
            value,
            target: format!("≤ {max}×"),
            pass: value <= max,
        });
    }

    /// Goal: a measured value at most `max` (in the unit the name says).
    pub fn max_goal(&mut self, name: &str, value: f64, max: f64) {
        self.goals.push(Goal {
            name: name.to_owned(),
            value,
            target: format!("≤ {max}"),
            pass: value <= max,
        });
    }

    /// Goal: a measured value at least `min`.
    pub fn min_goal(&mut self, name: &str, value: f64, min: f64) {
        self.goals.push(Goal {
            name: name.to_owned(),
            value,
            target: format!("≥ {min}"),
            pass: value >= min,
        });
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "## {}\n\n| what | median | min | max | rate |\n|---|---|---|---|---|\n",
            self.title
        );
        for s in &self.series {
            let median = quantile(&s.seconds, 0.5);
            let rate = match (s.bytes, s.ops) {
                (Some(bytes), _) => format!("{:.0} MB/s", bytes as f64 / median / 1e6),
                (_, Some(ops)) => format!("{:.0} µs/op", median / ops as f64 * 1e6),
                _ => String::new(),
            };
            md += &format!(
                "| {} | {:.3} s | {:.3} s | {:.3} s | {rate} |\n",
                cell(&s.what),
                median,
                quantile(&s.seconds, 0.0),
                quantile(&s.seconds, 1.0)
            );
        }
        if !self.goals.is_empty() {
            md += "\n| goal | value | target | |\n|---|---|---|---|\n";
            for g in &self.goals {
                let verdict = if g.pass { "pass" } else { "short" };
                md += &format!(
                    "| {} | {:.2} | {} | {verdict} |\n",
                    cell(&g.name),
                    g.value,
                    g.target
                );
            }
        }
        for note in &self.notes {
            md += &format!("\n{note}\n");
        }
        md + "\n"
    }
}

/// Text for a Markdown table cell: a shell pipeline's `|` would otherwise split the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
