//! Many people watching one page: each viewer asks for it again as soon as the previous
//! answer has arrived in full, for a fixed time.

use std::time::{Duration, Instant};

/// What one page answered under load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageLoad {
    pub page: &'static str,
    pub path: String,
    /// Complete `200 OK` answers per second.
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not `200 OK`, or broke off.
    pub failures: u64,
}

/// `viewers` clients GET `url` in a loop for `duration`, each reading the whole body.
pub async fn watch(
    client: &reqwest::Client,
    page: &'static str,
    path: &str,
    url: &str,
    viewers: usize,
    duration: Duration,
) -> PageLoad {
    let started = Instant::now();
    let each = (0..viewers).map(|_| async move {
        let mut times = Vec::new();
        let mut failures = 0u64;
        while started.elapsed() < duration {
            let asked = Instant::now();
            let answered = match client.get(url).send().await {
                Ok(response) if response.status().is_success() => response.bytes().await.is_ok(),
                _ => false,
            };
            if answered {
                times.push(asked.elapsed());
            } else {
                failures += 1;
            }
        }
        (times, failures)
    });
    let results = futures_util::future::join_all(each).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut times: Vec<Duration> = results
        .iter()
        .flat_map(|(t, _)| t.iter().copied())
        .collect();
    times.sort();
    let quantile = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .map_or(f64::NAN, |t| t.as_secs_f64() * 1000.0)
    };
    PageLoad {
        page,
        path: path.to_owned(),
        requests_per_s: times.len() as f64 / elapsed,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        failures: results.iter().map(|(_, f)| f).sum(),
    }
}
