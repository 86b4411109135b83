//! Charts as SVG images drawn on the server with plotters: no chart JavaScript, and an
//! `<img>` never runs what a service's names might smuggle in. Each page that shows a
//! chart also gives its numbers as text, for screen readers and for copying.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header;
use plotters::coord::CoordTranslate;
use plotters::prelude::*;
use runboard_core::snapshots::{TREND_HOURS, TrendPoint};
use runboard_model::{BatchItemStatus, BatchPace, BatchProgress, ServiceName};
use rust_decimal::prelude::ToPrimitive;

use crate::api::extract::ApiPath;
use crate::api::services::connector;
use crate::error::{ApiError, internal, not_found};
use crate::http::ServerState;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 320;
const DONE: RGBColor = RGBColor(0x1d, 0x6b, 0x35);
const FAILED: RGBColor = RGBColor(0xa3, 0x20, 0x1b);
const TOTAL: RGBColor = RGBColor(0x5a, 0x5f, 0x69);
const STUCK: RGBColor = RGBColor(0x8a, 0x5a, 0x00);

/// `GET /charts/services/{service}/batches/{batch}/progress.svg`: items finished over time,
/// with the projection to the ETA.
pub async fn batch_progress(
    State(state): State<ServerState>,
    ApiPath((service, batch_id)): ApiPath<(ServiceName, String)>,
) -> Result<Response, ApiError> {
    let connector = connector(&state, &service)?;
    let batch = connector
        .batches(Some(&batch_id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("service {service} has no batch {batch_id:?}")))?;
    let finished = connector.finished_items(&batch_id).await?;
    let svg = draw_batch_progress(&batch, &finished, Utc::now())
        .map_err(|e| internal("drawing a batch chart", e))?;
    Ok(svg_response(svg))
}

/// `GET /charts/services/{service}/trend.svg`: stuck and failed sagas over the last 24 hours,
/// from the poller's snapshots and, before the first, the service's own timestamps. A
/// service retired from the cluster keeps its chart while its snapshots are kept.
pub async fn service_trend(
    State(state): State<ServerState>,
    ApiPath(service): ApiPath<ServiceName>,
) -> Result<Response, ApiError> {
    let now = Utc::now();
    let points = state
        .app
        .store
        .trend(&service, now - chrono::Duration::hours(TREND_HOURS))
        .await
        .map_err(|e| internal("reading the service snapshots", e))?;
    if points.is_empty() {
        connector(&state, &service)?;
    }
    let svg = draw_trend(service.as_str(), &points, now)
        .map_err(|e| internal("drawing a trend chart", e))?;
    Ok(svg_response(svg))
}

/// Stuck and failed counts against the last 24 hours: dashed where they were reconstructed
/// from the service's timestamps, solid from the first poll on, which a line marks.
fn draw_trend(service: &str, points: &[TrendPoint], now: DateTime<Utc>) -> Result<String, String> {
    let start = now - chrono::Duration::hours(TREND_HOURS);
    let hours = |at: DateTime<Utc>| (at - start).num_seconds() as f64 / 3600.0;
    let y_max = points
        .iter()
        .map(|p| p.stuck.max(p.failed))
        .max()
        .unwrap_or(0) as f64
        // Headroom for the legend above the lines.
        * 2.0
        + 1.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (400, 200)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{service}: stuck and failed, last 24 h"),
                ("sans-serif", 14),
            )
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..TREND_HOURS as f64, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("time (UTC)")
            .y_desc("sagas")
            .x_labels(5)
            .x_label_formatter(&|x| {
                (start + chrono::Duration::seconds((x * 3600.0) as i64))
                    .format("%H:%M")
                    .to_string()
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        let measured_from = points.iter().position(|p| !p.reconstructed);
        // The dashed part runs up to the first measured point, so that the line is unbroken.
        let before = &points[..measured_from.map_or(points.len(), |i| i + 1)];
        let measured = &points[measured_from.unwrap_or(points.len())..];
        for (label, color, value) in [
            (
                "failed",
                FAILED,
                (|p: &TrendPoint| p.failed) as fn(&TrendPoint) -> u64,
            ),
            ("stuck", STUCK, |p: &TrendPoint| p.stuck),
        ] {
            let at = |p: &TrendPoint| (hours(p.at), value(p) as f64);
            chart
                .draw_series(DashedLineSeries::new(
                    before.iter().map(at),
                    4,
                    3,
                    color.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    measured.iter().map(at),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        if let (Some(first), true) = (measured_from.map(|i| points[i].at), before.len() > 1) {
            let x = hours(first);
            chart
                .draw_series([PathElement::new([(x, 0.0), (x, y_max)], TOTAL)])
                .map_err(|e| e.to_string())?
                .label("first poll; dashed before: from timestamps")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], TOTAL));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// `GET /charts/funds/{currency}/by-service.svg`: withheld funds of one currency per service,
/// from the latest snapshots.
pub async fn funds_by_service(
    State(state): State<ServerState>,
    ApiPath(currency): ApiPath<String>,
) -> Result<Response, ApiError> {
    let funds = state
        .app
        .store
        .funds()
        .await
        .map_err(|e| internal("reading the service snapshots", e))?;
    let bars: Vec<(String, f64)> = funds
        .iter()
        .filter_map(|service| {
            let money = service
                .withheld_funds
                .iter()
                .find(|m| m.currency == currency)?;
            // Only the bar's length is a float; the amounts shown as text stay decimals.
            Some((service.service.to_string(), money.amount.to_f64()?))
        })
        .collect();
    if bars.is_empty() {
        return Err(not_found(format!("no service withholds {currency:?}")));
    }
    let svg = draw_funds(&currency, &bars).map_err(|e| internal("drawing a funds chart", e))?;
    Ok(svg_response(svg))
}

/// The series' legend, boxed, where it hides the least.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(TOTAL)
        .draw()
        .map_err(|e| e.to_string())
}

fn svg_response(svg: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response()
}

/// One horizontal bar per service.
fn draw_funds(currency: &str, bars: &[(String, f64)]) -> Result<String, String> {
    let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1.0) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (480, 240)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let names: Vec<&str> = bars.iter().map(|(n, _)| n.as_str()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Withheld {currency} per service"),
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(90)
            .build_cartesian_2d(0.0..max, (0..bars.len()).into_segmented())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .x_desc(currency.to_owned())
            .y_desc("service")
            .y_label_formatter(&|segment| match segment {
                SegmentValue::CenterOf(i) => {
                    names.get(*i).map(|n| n.to_string()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, value))| {
                Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(i)),
                        (*value, SegmentValue::Exact(i + 1)),
                    ],
                    FAILED.mix(0.8).filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// The cumulative done and failed items against time since the batch started.
fn draw_batch_progress(
    batch: &BatchProgress,
    finished: &[(DateTime<Utc>, BatchItemStatus)],
    now: DateTime<Utc>,
) -> Result<String, String> {
    let total = batch.done + batch.failed + batch.pending;
    let times: Vec<DateTime<Utc>> = finished.iter().map(|(at, _)| *at).collect();
    let pace = BatchPace::measure(&times, batch.pending, now);
    let start = batch.started_at;
    let end = batch.finished_at.or(pace.eta).unwrap_or(now).max(now);
    let minutes = |at: DateTime<Utc>| (at - start).num_seconds() as f64 / 60.0;
    let x_max = minutes(end).max(1.0);
    let y_max = (total as f64 * 1.05).max(1.0);

    let (mut done, mut failed) = (0u64, 0u64);
    let mut done_line = vec![(0.0, 0.0)];
    let mut failed_line = vec![(0.0, 0.0)];
    for (at, status) in finished {
        match status {
            BatchItemStatus::Done => done += 1,
            BatchItemStatus::Failed => failed += 1,
            BatchItemStatus::Pending => continue,
        }
        done_line.push((minutes(*at), done as f64));
        failed_line.push((minutes(*at), failed as f64));
    }
    let now_x = minutes(now).min(x_max);
    done_line.push((now_x, done as f64));
    failed_line.push((now_x, failed as f64));

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let title = format!("{}: items finished over time", batch.name);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(|e| e.to_string())?;
        let clock = |x: &f64| {
            (start + chrono::Duration::seconds((x * 60.0) as i64))
                .format("%H:%M")
                .to_string()
        };
        chart
            .configure_mesh()
            .x_desc("time (UTC)")
            .y_desc("items")
            .x_label_formatter(&clock)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, total as f64), (x_max, total as f64)],
                TOTAL.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(format!("all {total} items"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], TOTAL));
        chart
            .draw_series(LineSeries::new(done_line, DONE.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("done")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], DONE.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(failed_line, FAILED.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label("failed")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], FAILED.stroke_width(2)));
        if let Some(eta) = pace.eta {
            let projected = [
                (now_x, (done + failed) as f64),
                (minutes(eta).min(x_max), total as f64),
            ];
            chart
                .draw_series(DashedLineSeries::new(projected, 6, 4, DONE.stroke_width(1)))
                .map_err(|e| e.to_string())?
                .label("projected at the current rate")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], DONE));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trend_chart_has_its_title_axes_and_both_series() {
        let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let points: Vec<_> = (0..48)
            .map(|i| TrendPoint {
                at: now - chrono::Duration::minutes(30 * i),
                stuck: i as u64 % 5,
                failed: 10 + i as u64,
                reconstructed: i >= 24,
            })
            .rev()
            .collect();
        let svg = draw_trend("payouts", &points, now).unwrap();
        for text in [
            "payouts: stuck and failed, last 24 h",
            "time (UTC)",
            "sagas",
            "stuck",
            "failed",
            "first poll",
        ] {
            assert!(svg.contains(text), "chart lacks {text:?}");
        }
        let measured_only: Vec<_> = points
            .iter()
            .filter(|p| !p.reconstructed)
            .copied()
            .collect();
        let svg = draw_trend("payouts", &measured_only, now).unwrap();
        assert!(
            !svg.contains("first poll"),
            "nothing is marked where nothing was reconstructed"
        );
    }

    #[test]
    fn a_funds_chart_names_its_currency_and_services() {
        let svg = draw_funds(
            "EUR",
            &[("payments".into(), 20484.19), ("wallet".into(), 12.5)],
        )
        .unwrap();
        for text in ["Withheld EUR per service", "payments", "wallet", "service"] {
            assert!(svg.contains(text), "chart lacks {text:?}");
        }
    }

    #[test]
    fn a_batch_chart_has_its_title_axes_and_series() {
        let now: DateTime<Utc> = "2026-11-24T12:00:00Z".parse().unwrap();
        let batch = BatchProgress {
            batch_id: "b".into(),
            name: "Friday payout".into(),
            started_at: now - chrono::Duration::minutes(30),
            finished_at: None,
            done: 20,
            failed: 2,
            pending: 78,
            last_finished_at: None,
        };
        let finished: Vec<_> = (0..22)
            .map(|i| {
                let status = if i % 11 == 0 {
                    BatchItemStatus::Failed
                } else {
                    BatchItemStatus::Done
                };
                (
                    now - chrono::Duration::minutes(12 - i64::from(i) / 2),
                    status,
                )
            })
            .collect();
        let svg = draw_batch_progress(&batch, &finished, now).unwrap();
        for text in [
            "Friday payout: items finished over time",
            "time (UTC)",
            "items",
            "done",
            "failed",
            "all 100 items",
            "projected",
        ] {
            assert!(svg.contains(text), "chart lacks {text:?}");
        }
    }
}
