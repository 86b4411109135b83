//! The export figures (#31): Runboard's CSV export of every saga of a service seeded to
//! `--sagas`, against `psql`'s `COPY (SELECT …) TO STDOUT (FORMAT csv)` of the same rows
//! in the same order, in the same run; with the ratio and how much Runboard's resident
//! memory grew while it streamed the file.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::setup::{Setup, say};

/// The exported service: it holds no money and runs no batch, so only its sagas are read.
pub const SERVICE: &str = "onboarding";

/// What the export figures came to.
pub struct ExportRun {
    pub rows: u64,
    pub megabytes: f64,
    pub runboard_seconds: f64,
    pub psql_rows: u64,
    pub psql_seconds: f64,
    /// Runboard's resident memory before the export, and the most it held meanwhile.
    pub rss_before_mb: f64,
    pub rss_peak_mb: f64,
}

impl ExportRun {
    pub fn runboard_rate(&self) -> f64 {
        self.rows as f64 / self.runboard_seconds
    }

    pub fn psql_rate(&self) -> f64 {
        self.psql_rows as f64 / self.psql_seconds
    }
}

/// `psql` copies the rows Runboard's export holds (its columns, the status derived as SPEC
/// says, newest first) to its standard output, read and counted here; once to warm the
/// database's cache for both, then measured. Then Runboard exports them.
pub async fn measure(setup: &Setup) -> Result<ExportRun, String> {
    let service = setup
        .fleet
        .services()
        .iter()
        .find(|s| s.name == SERVICE)
        .ok_or("the demo fleet has no onboarding service")?
        .clone();
    let copy = format!(
        "COPY (SELECT saga_id, saga_type, current_step, \
           CASE WHEN completed THEN 'completed' WHEN error_message IS NOT NULL THEN 'failed' \
                WHEN updated_at < now() - interval '{} seconds' THEN 'stuck' ELSE 'running' END, \
           error_message, created_at, updated_at \
         FROM supervisor_view ORDER BY created_at DESC, saga_id DESC) TO STDOUT (FORMAT csv, HEADER)",
        service.stuck_after.as_secs()
    );
    let url = service.database_url.clone();
    say("psql COPY of the same rows, once to warm the cache");
    psql_copy(&url, &copy).await?;
    let started = Instant::now();
    let psql_rows = psql_copy(&url, &copy).await?;
    let psql_seconds = started.elapsed().as_secs_f64();

    say(&format!("Runboard's CSV export of {SERVICE}'s sagas"));
    let rss_before_mb = setup.runboard_memory_mb("VmRSS")?;
    let mut rss_peak_mb = rss_before_mb;
    let started = Instant::now();
    let mut response = setup
        .client
        .get(setup.url(&format!("/api/v1/services/{SERVICE}/sagas?format=csv")))
        .send()
        .await
        .map_err(|e| format!("the export: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("the export answered {}", response.status()));
    }
    let (mut lines, mut bytes) = (0_u64, 0_u64);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the export broke off: {e}"))?
    {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        bytes += chunk.len() as u64;
        rss_peak_mb = rss_peak_mb.max(setup.runboard_memory_mb("VmRSS")?);
    }
    let runboard_seconds = started.elapsed().as_secs_f64();
    Ok(ExportRun {
        // Less the header row on each side.
        rows: lines.saturating_sub(1),
        megabytes: bytes as f64 / 1e6,
        runboard_seconds,
        psql_rows: psql_rows.saturating_sub(1),
        psql_seconds,
        rss_before_mb,
        rss_peak_mb,
    })
}

/// Runs `psql -c <copy>` on `url`; the lines it wrote.
async fn psql_copy(url: &str, copy: &str) -> Result<u64, String> {
    let (url, copy) = (url.to_owned(), copy.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &url, "-c", &copy])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("psql could not start ({e}); install the PostgreSQL client"))?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut buffer = vec![0_u8; 256 * 1024];
        let mut lines = 0_u64;
        loop {
            let n = stdout.read(&mut buffer).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            lines += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64;
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("psql failed: {status}"));
        }
        Ok(lines)
    })
    .await
    .map_err(|e| e.to_string())?
}
