//! Memory with many services polled (#33): Runboard's resident memory with `--services`
//! services, each on its own database, polled as `runboard serve` polls them, against the
//! same Runboard with one service, in the same run.

use std::time::{Duration, Instant};

use crate::setup::{Settings, Setup, say};

/// Poll intervals (`poller.interval`, 15 s) sampled after the first poll of every service,
/// so the figures cover both the polls and the quiet between them.
const INTERVALS_SAMPLED: u32 = 3;

/// Runboard's memory with some number of services polled.
pub struct Polled {
    pub services: usize,
    /// The mean of the resident memory sampled every 250 ms, in MB.
    pub rss_mean_mb: f64,
    /// The most resident memory the process held, start included (its high-water mark).
    pub rss_peak_mb: f64,
}

/// Runboard with one service, then with `services`, each measured alone.
pub async fn measure(settings: &Settings, services: usize) -> Result<[Polled; 2], String> {
    Ok([
        polled(settings, 1).await?,
        polled(settings, services).await?,
    ])
}

async fn polled(settings: &Settings, services: usize) -> Result<Polled, String> {
    let settings = Settings {
        service_copies: Some(services),
        ..settings.clone()
    };
    let setup = Setup::start(&settings).await?;
    say(&format!(
        "{services} services polled; sampling Runboard's memory for {INTERVALS_SAMPLED} poll intervals"
    ));
    let sampled = sample(&setup).await;
    setup.stop().await;
    let (rss_mean_mb, rss_peak_mb) = sampled?;
    Ok(Polled {
        services,
        rss_mean_mb,
        rss_peak_mb,
    })
}

async fn sample(setup: &Setup) -> Result<(f64, f64), String> {
    let until = Instant::now() + Duration::from_secs(15) * INTERVALS_SAMPLED;
    let (mut sum, mut count) = (0.0, 0_u32);
    while Instant::now() < until {
        sum += setup.runboard_memory_mb("VmRSS")?;
        count += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok((sum / f64::from(count), setup.runboard_peak_rss_mb()?))
}
