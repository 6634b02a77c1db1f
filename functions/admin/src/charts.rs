//! The console's charts, drawn as inline SVG on the server (no script, no CDN): usage per hour
//! (ingested against pushed) and callbacks per minute by result code.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use koogallery::{
    exchange::{Direction, Exchange},
    metering::{UsageWindow, WindowState},
};
use maud::{Markup, html};
use rust_decimal::prelude::ToPrimitive;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;

/// A colour per result code, stable across pages.
fn colour(code: &str) -> &'static str {
    match code {
        "000000" => "#2e7d32",
        "000004" => "#0277bd",
        "000005" => "#c62828",
        "000001" => "#ef6c00",
        "000002" => "#6a1b9a",
        "000003" => "#ad1457",
        _ => "#546e7a",
    }
}

fn axis(max: f64, unit: &str) -> Markup {
    let top = 8.0;
    html! {
        line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#999" {}
        line x1=(LEFT) y1=(top) x2=(LEFT) y2=(HEIGHT - BOTTOM) stroke="#999" {}
        text x=(LEFT - 4.0) y=(top + 8.0) text-anchor="end" font-size="10" { (format_number(max)) }
        text x=(LEFT - 4.0) y=(HEIGHT - BOTTOM) text-anchor="end" font-size="10" { "0" }
        text x="4" y=(HEIGHT / 2.0) font-size="10" { (unit) }
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Usage per hour of one instance: what was ingested (every window's total) next to what was
/// pushed and accepted by KooGallery, hour by hour.
pub(crate) fn usage(windows: &[UsageWindow]) -> Markup {
    let mut hours: BTreeMap<DateTime<Utc>, (f64, f64)> = BTreeMap::new();
    for w in windows {
        let entry = hours.entry(w.start).or_default();
        entry.0 += w.total.to_f64().unwrap_or(0.0);
        if let WindowState::Accepted { sealed, .. } = &w.state {
            entry.1 += sealed.value.to_f64().unwrap_or(0.0);
        }
    }
    if hours.is_empty() {
        return html! { p.empty { "No usage reported for this instance." } };
    }
    let max = hours
        .values()
        .map(|(a, b)| a.max(*b))
        .fold(0.0, f64::max)
        .max(1.0);
    let plot = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / hours.len() as f64;
    let bar = (slot / 2.0 - 2.0).clamp(1.0, 24.0);
    html! {
        svg.chart #usage-chart role="img" aria-label="usage per hour: ingested and pushed" viewBox={"0 0 " (WIDTH) " " (HEIGHT)} width="100%" {
            (axis(max, "units"))
            @for (n, (hour, (ingested, pushed))) in hours.iter().enumerate() {
                @let x = LEFT + n as f64 * slot + 2.0;
                @let hi = ingested / max * plot;
                @let hp = pushed / max * plot;
                rect.ingested x=(x) y=(HEIGHT - BOTTOM - hi) width=(bar) height=(hi) fill="#1565c0" {
                    title { (hour.format("%Y-%m-%d %H:00")) " ingested " (format_number(*ingested)) }
                }
                rect.pushed x=(x + bar + 1.0) y=(HEIGHT - BOTTOM - hp) width=(bar) height=(hp) fill="#2e7d32" {
                    title { (hour.format("%Y-%m-%d %H:00")) " pushed and accepted " (format_number(*pushed)) }
                }
                @if hours.len() <= 24 || n % (hours.len() / 12).max(1) == 0 {
                    text x=(x) y=(HEIGHT - 8.0) font-size="9" { (hour.format("%d %H:00")) }
                }
            }
        }
        p.legend { span.swatch style="background:#1565c0" {} " ingested " span.swatch style="background:#2e7d32" {} " pushed and accepted by KooGallery" }
    }
}

/// The calls KooGallery made in the hour before `now`, per minute, stacked by result code.
pub(crate) fn callbacks_per_minute(exchanges: &[Exchange], now: DateTime<Utc>) -> Markup {
    let start = (now - Duration::minutes(59))
        .duration_trunc(Duration::minutes(1))
        .unwrap_or(now);
    let mut minutes: BTreeMap<i64, BTreeMap<String, u32>> = BTreeMap::new();
    let mut codes: BTreeMap<String, u32> = BTreeMap::new();
    for e in exchanges
        .iter()
        .filter(|e| e.direction == Direction::Inbound && e.at >= start)
    {
        let minute = (e.at - start).num_minutes();
        let code = e.result_code.clone().unwrap_or_else(|| "-".into());
        *minutes
            .entry(minute)
            .or_default()
            .entry(code.clone())
            .or_default() += 1;
        *codes.entry(code).or_default() += 1;
    }
    let max = minutes
        .values()
        .map(|m| m.values().sum::<u32>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot = HEIGHT - BOTTOM - 8.0;
    let slot = (WIDTH - LEFT) / 60.0;
    html! {
        svg.chart #callbacks-chart role="img" aria-label="callbacks per minute by result code" viewBox={"0 0 " (WIDTH) " " (HEIGHT)} width="100%" {
            (axis(max, "calls"))
            @for (minute, by_code) in &minutes {
                @let x = LEFT + *minute as f64 * slot + 1.0;
                @let mut y = HEIGHT - BOTTOM;
                @for (code, n) in by_code {
                    @let h = f64::from(*n) / max * plot;
                    @let top = { y -= h; y };
                    rect x=(x) y=(top) width=((slot - 2.0).max(1.0)) height=(h) fill=(colour(code)) {
                        title { (code) ": " (n) }
                    }
                }
            }
            text x=(LEFT) y=(HEIGHT - 8.0) font-size="9" { (start.format("%H:%M")) }
            text x=(WIDTH) y=(HEIGHT - 8.0) font-size="9" text-anchor="end" { (now.format("%H:%M")) " UTC" }
        }
        p.legend {
            @if codes.is_empty() { "No calls from KooGallery in the last hour." }
            @for (code, n) in &codes {
                span.swatch style={"background:" (colour(code))} {} " " (code) " (" (n) ") "
            }
        }
    }
}
