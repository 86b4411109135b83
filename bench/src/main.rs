//! `scripts/bench`: Runboard's figures at fleet scale (issue #12), on PostgreSQL with the
//! demo fleet seeded to `--sagas` sagas per service, against `runboard serve` in release.
//! Prints a table, then one JSON object of the figures on the last line of stdout.
//!
//! Measured:
//! 1. the endpoint's own rate for the same protocol as Runboard's (the dry run of every
//!    entity, then the real calls, in chunks of 1,000 IDs, 4 in flight), and
//! 2. Runboard's action on an error group of `--entities` sagas, from approval to
//!    succeeded (its re-check included), side by side, with the ratio;
//! 3. the preview's time and the action page's load time at that size, and Runboard's
//!    peak RSS; where the processors' time went (by process) in the endpoint's dry run and
//!    in the preview;
//! 4. requests/s of the overview, service, funds and action pages under `--viewers`
//!    concurrent viewers, against `/healthz` in the same process (the ratio shows what
//!    rendering costs), and how many statements each page's viewers sent to the service's
//!    database meanwhile.
//!
//! 5. Runboard's resident memory with `--services` services polled (each on its own SQLite
//!    file), against the same Runboard with one service (`scripts/bench --services 200`
//!    measures only this).
//!
//! With `--export`, only the CSV export (#31): every saga of one service seeded to
//! `--sagas` (`scripts/bench --export --sagas 1000000`), against `psql`'s `COPY … TO STDOUT
//! (FORMAT csv)` of the same rows, and Runboard's memory meanwhile.

mod actions;
mod cpu;
mod export;
mod services;
mod setup;
mod viewers;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use setup::{Settings, Setup, say};
use viewers::PageLoad;

#[derive(Parser)]
#[command(about = "Runboard's figures at fleet scale, on PostgreSQL with the demo fleet")]
struct Args {
    /// Sagas seeded into each demo service.
    #[arg(long, default_value_t = 200_000)]
    sagas: u64,
    /// Entities of the action measured (and as many again for the endpoint called directly).
    #[arg(long, default_value_t = 100_000)]
    entities: u64,
    /// People watching a page at once.
    #[arg(long, default_value_t = 16)]
    viewers: usize,
    /// How long each page is watched.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The PostgreSQL maintenance database the run creates its databases from.
    #[arg(
        long,
        env = "RUNBOARD_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// The release binary to measure.
    #[arg(long, default_value = "target/release/runboard")]
    runboard: PathBuf,
    /// The site the binary serves (`cargo xtask build --release` makes it).
    #[arg(long, default_value = "target/site")]
    site_root: PathBuf,
    /// Keep the databases and Runboard's log afterwards.
    #[arg(long)]
    keep: bool,
    /// Measure only the CSV export of every saga of one service seeded to `--sagas`.
    #[arg(long)]
    export: bool,
    /// Services polled while Runboard's memory is measured, after the rest (0: not measured).
    #[arg(long, default_value_t = 200)]
    services: usize,
    /// Measure only the memory with `--services` services polled.
    #[arg(long)]
    only_services: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let settings = Settings {
        admin_url: args.postgres_url.clone(),
        sagas_per_service: args.sagas,
        seed_only: args.export.then_some(export::SERVICE),
        service_copies: None,
        runboard: args.runboard.clone(),
        site_root: args.site_root.clone(),
        keep: args.keep,
    };
    if args.only_services {
        report_services(&polled_services(&settings, args.services).await);
        return;
    }
    let setup = match Setup::start(&settings).await {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    if args.export {
        let run = export::measure(&setup).await;
        setup.stop().await;
        match run {
            Ok(run) => report_export(&run),
            Err(e) => {
                eprintln!("bench: the export run failed: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let action = match actions::measure(&setup, args.entities).await {
        Ok(action) => action,
        Err(e) => {
            eprintln!("bench: the action run failed: {e}");
            setup.stop().await;
            std::process::exit(1);
        }
    };
    let pages = watch_pages(&setup, &args, &action.page).await;
    let seeded_in = setup.seeded_in;
    setup.stop().await;
    report(&args, seeded_in, &action, &pages);
    if args.services > 0 {
        report_services(&polled_services(&settings, args.services).await);
    }
}

/// Runboard's memory with one service and with `services`, or the run's end on a failure.
async fn polled_services(settings: &Settings, services: usize) -> [services::Polled; 2] {
    match services::measure(settings, services).await {
        Ok(polled) => polled,
        Err(e) => {
            eprintln!("bench: the services run failed: {e}");
            std::process::exit(1);
        }
    }
}

/// One page a viewer watches, and the service whose database it reads.
struct Page<'a> {
    name: &'static str,
    path: &'a str,
    service: Option<&'static str>,
}

/// The read pages (item 4 of the issue) and the action page at `action_page`, each against
/// `/healthz` measured in the same run.
async fn watch_pages(
    setup: &Setup,
    args: &Args,
    action_page: &str,
) -> Vec<(PageLoad, Option<u64>)> {
    const PAGES: &[Page<'static>] = &[
        Page {
            name: "healthz",
            path: "/healthz",
            service: None,
        },
        Page {
            name: "overview",
            path: "/",
            service: None,
        },
        Page {
            name: "service",
            path: "/services/payments",
            service: Some("payments"),
        },
        Page {
            name: "funds",
            path: "/funds",
            service: Some("payments"),
        },
    ];
    let action = Page {
        name: "action",
        path: action_page,
        service: None,
    };
    let mut measured = Vec::new();
    for page in PAGES.iter().chain([&action]) {
        // One view first, so that no page is measured on a cold cache of its own.
        let _ = setup.client.get(setup.url(page.path)).send().await;
        let before = service_reads(setup, page.service).await;
        say(&format!(
            "{} viewers on {} for {:?}",
            args.viewers, page.path, args.duration
        ));
        let load = viewers::watch(
            &setup.client,
            page.name,
            page.path,
            &setup.url(page.path),
            args.viewers,
            args.duration,
        )
        .await;
        let after = service_reads(setup, page.service).await;
        measured.push((load, after.zip(before).map(|(a, b)| a - b)));
    }
    measured
}

/// Statements Runboard sent to `service`'s database so far (`/metrics`), poller included.
async fn service_reads(setup: &Setup, service: Option<&str>) -> Option<u64> {
    let service = service?;
    let metrics = reqwest::get(setup.url("/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let label = format!("service=\"{service}\"");
    Some(
        metrics
            .lines()
            .filter(|line| {
                line.starts_with("runboard_service_reads_total{") && line.contains(&label)
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum(),
    )
}

fn report(
    args: &Args,
    seeded_in: Duration,
    action: &actions::ActionRun,
    pages: &[(PageLoad, Option<u64>)],
) {
    let ratio = action.runboard_rate() / action.endpoint_rate();
    println!(
        "\n{:<52} {:>10} {:>12} {:>10}",
        "actions", "entities", "seconds", "entities/s"
    );
    println!(
        "{:<52} {:>10} {:>12.1} {:>10.0}",
        "the endpoint called directly (dry run, then real)",
        action.entities,
        action.endpoint_seconds,
        action.endpoint_rate()
    );
    println!(
        "{:<52} {:>10} {:>12.1} {:>10.0}",
        "Runboard's action (approval to succeeded)",
        action.runboard_entities,
        action.runboard_seconds,
        action.runboard_rate()
    );
    println!("{:<52} {:>10.2}", "ratio (Runboard / endpoint)", ratio);
    println!(
        "{:<52} {:>10.1}",
        "preview of the action (s)", action.preview_seconds
    );
    println!(
        "{:<52} {:>10.0}",
        "action page, one view (ms, median)", action.page_ms
    );
    println!(
        "{:<52} {:>10.0}",
        "Runboard's peak RSS (MB)", action.peak_rss_mb
    );
    cpu::print_table(&[
        ("the endpoint's dry run", &action.dry_run_cpu),
        ("Runboard's preview", &action.preview_cpu),
    ]);
    let healthz = pages
        .iter()
        .find(|(p, _)| p.page == "healthz")
        .map_or(f64::NAN, |(p, _)| p.requests_per_s);
    println!(
        "\n{} sagas per service, {} viewers, {:?} per page\n",
        args.sagas, args.viewers, args.duration
    );
    println!(
        "{:<10} {:<20} {:>10} {:>10} {:>9} {:>9} {:>9} {:>14}",
        "page", "path", "req/s", "/healthz", "p50 ms", "p99 ms", "failed", "service reads"
    );
    let mut json_pages = Vec::new();
    for (load, reads) in pages {
        let ratio = load.requests_per_s / healthz;
        println!(
            "{:<10} {:<20} {:>10.1} {:>10.3} {:>9.1} {:>9.1} {:>9} {:>14}",
            load.page,
            load.path,
            load.requests_per_s,
            ratio,
            load.p50_ms,
            load.p99_ms,
            load.failures,
            reads.map_or("-".into(), |r| r.to_string()),
        );
        let mut figures = serde_json::to_value(load).expect("figures serialize");
        figures["ratio_to_healthz"] = json!(ratio);
        figures["service_reads"] = json!(reads);
        json_pages.push(figures);
    }
    let report = json!({
        "sagas_per_service": args.sagas,
        "viewers": args.viewers,
        "seconds_per_page": args.duration.as_secs_f64(),
        "seed_s": seeded_in.as_secs_f64(),
        "action": {
            "entities": action.runboard_entities,
            "endpoint_entities": action.entities,
            "endpoint_s": action.endpoint_seconds,
            "endpoint_entities_per_s": action.endpoint_rate(),
            "runboard_s": action.runboard_seconds,
            "runboard_entities_per_s": action.runboard_rate(),
            "ratio": ratio,
            "preview_s": action.preview_seconds,
            "action_page_ms": action.page_ms,
            "peak_rss_mb": action.peak_rss_mb,
            "dry_run_cpu": action.dry_run_cpu.json(),
            "preview_cpu": action.preview_cpu.json(),
        },
        "pages": json_pages,
    });
    println!("\n{report}");
}

fn report_services([one, many]: &[services::Polled; 2]) {
    println!(
        "\n{:<52} {:>10} {:>12} {:>12}",
        "memory with services polled", "services", "RSS mean MB", "RSS peak MB"
    );
    for polled in [one, many] {
        println!(
            "{:<52} {:>10} {:>12.1} {:>12.1}",
            "Runboard, every service polled every 15 s",
            polled.services,
            polled.rss_mean_mb,
            polled.rss_peak_mb
        );
    }
    let per_service = (many.rss_mean_mb - one.rss_mean_mb) / (many.services - 1).max(1) as f64;
    println!(
        "{:<52} {:>10.2}",
        "ratio of the means (many / one)",
        many.rss_mean_mb / one.rss_mean_mb
    );
    println!(
        "{:<52} {:>10.3}",
        "MB per service added (mean)", per_service
    );
    let polled: Vec<_> = [one, many]
        .iter()
        .map(|p| {
            json!({
                "services": p.services,
                "rss_mean_mb": p.rss_mean_mb,
                "rss_peak_mb": p.rss_peak_mb,
            })
        })
        .collect();
    let report = json!({ "services": polled, "mb_per_service": per_service });
    println!("\n{report}");
}

fn report_export(run: &export::ExportRun) {
    let ratio = run.runboard_rate() / run.psql_rate();
    let grown = run.rss_peak_mb - run.rss_before_mb;
    println!(
        "\n{:<52} {:>10} {:>10} {:>10}",
        "export of every saga as CSV", "rows", "seconds", "rows/s"
    );
    println!(
        "{:<52} {:>10} {:>10.2} {:>10.0}",
        "psql COPY (SELECT …) TO STDOUT (FORMAT csv)",
        run.psql_rows,
        run.psql_seconds,
        run.psql_rate()
    );
    println!(
        "{:<52} {:>10} {:>10.2} {:>10.0}",
        "Runboard GET …/sagas?format=csv",
        run.rows,
        run.runboard_seconds,
        run.runboard_rate()
    );
    println!(
        "{:<52} {:>10.2}",
        "ratio (Runboard / psql; goal at least 0.5)", ratio
    );
    println!("{:<52} {:>10.1}", "file (MB)", run.megabytes);
    println!(
        "{:<52} {:>10.1}",
        "Runboard's RSS growth while exporting (MB; goal < 30)", grown
    );
    let report = json!({
        "export": {
            "service": export::SERVICE,
            "rows": run.rows,
            "megabytes": run.megabytes,
            "runboard_s": run.runboard_seconds,
            "runboard_rows_per_s": run.runboard_rate(),
            "psql_rows": run.psql_rows,
            "psql_s": run.psql_seconds,
            "psql_rows_per_s": run.psql_rate(),
            "ratio": ratio,
            "rss_before_mb": run.rss_before_mb,
            "rss_peak_mb": run.rss_peak_mb,
            "rss_growth_mb": grown,
        }
    });
    println!("\n{report}");
}
