//! Hand-written SVG line charts (no plotting dependency): the propagation plot and the
//! scale section's log-log plots both draw through [`svg`].

use std::fmt::Write as _;

/// How an axis maps values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// From zero to a little above the largest value, evenly spaced ticks.
    Linear,
    /// Logarithmic, ticks at powers of ten.
    Log,
}

/// One line of a chart. Points that cannot be drawn (not finite, or not positive on a log
/// axis) are skipped and break the line there.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub(crate) label: String,
    pub(crate) color: &'static str,
    /// `stroke-dasharray`, empty for a solid line.
    pub(crate) dash: &'static str,
    pub(crate) points: Vec<(f64, f64)>,
}

/// One chart: axes, labelled x ticks (the measured sizes), series.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    /// The x axis is always logarithmic (fleet sizes); ticks are these values.
    pub(crate) x_ticks: Vec<f64>,
    pub(crate) y_scale: Scale,
    pub(crate) series: Vec<Series>,
}

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// The charts stacked vertically in one SVG document.
pub(crate) fn svg(charts: &[Chart]) -> String {
    let total_h = H * charts.len().max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{total_h}" viewBox="0 0 {W} {total_h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{total_h}" fill="white"/>"#);
    for (i, chart) in charts.iter().enumerate() {
        let _ = writeln!(s, r#"<g transform="translate(0 {})">"#, H * i as f64);
        draw(&mut s, chart);
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    s
}

fn drawable(scale: Scale, v: f64) -> bool {
    v.is_finite() && (scale == Scale::Linear || v > 0.0)
}

fn draw(s: &mut String, chart: &Chart) {
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    // x: log over the tick range.
    let x_lo = chart
        .x_ticks
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let x_hi = chart.x_ticks.iter().copied().fold(0.0, f64::max);
    let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > x_lo {
        (x_lo.ln(), x_hi.ln())
    } else {
        (0.0, 1.0)
    };
    let px = |x: f64| LEFT + pw * (x.ln() - x_lo) / (x_hi - x_lo);
    let values: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|se| se.points.iter().map(|p| p.1))
        .filter(|v| drawable(chart.y_scale, *v))
        .collect();
    let (y_lo, y_hi, y_ticks): (f64, f64, Vec<f64>) = match chart.y_scale {
        Scale::Linear => {
            let hi = values.iter().copied().fold(100.0, f64::max) * 1.1;
            let step = nice_step(hi / 6.0);
            let ticks = (0..)
                .map(|i| f64::from(i) * step)
                .take_while(|y| *y <= hi)
                .collect();
            (0.0, hi, ticks)
        }
        Scale::Log => {
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(0.0, f64::max);
            let (lo, hi) = if lo.is_finite() && hi > 0.0 {
                (
                    lo.log10().floor(),
                    hi.log10().ceil().max(lo.log10().floor() + 1.0),
                )
            } else {
                (0.0, 1.0)
            };
            #[allow(clippy::cast_possible_truncation)]
            let ticks = (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect();
            (lo, hi, ticks)
        }
    };
    let py = |y: f64| match chart.y_scale {
        Scale::Linear => TOP + ph * (1.0 - (y - y_lo) / (y_hi - y_lo)),
        Scale::Log => TOP + ph * (1.0 - (y.log10() - y_lo) / (y_hi - y_lo)),
    };
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        LEFT + pw / 2.0,
        chart.title
    );
    for y in &y_ticks {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            py(*y),
            py(*y),
            LEFT - 6.0,
            py(*y) + 4.0,
            tick_label(*y)
        );
    }
    for x in &chart.x_ticks {
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
            px(*x),
            px(*x),
            TOP + ph,
            px(*x),
            TOP + ph + 18.0,
            tick_label(*x)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="#000"/><line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#000"/>"##,
        TOP + ph,
        LEFT + pw,
        TOP + ph,
        TOP + ph
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 20.0,
        chart.x_label
    );
    let _ = writeln!(
        s,
        r#"<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        chart.y_label
    );
    for (i, se) in chart.series.iter().enumerate() {
        let color = se.color;
        let dash = se.dash;
        // Runs of drawable points, one polyline each.
        let mut runs: Vec<Vec<String>> = vec![Vec::new()];
        for &(x, y) in &se.points {
            if drawable(chart.y_scale, y) && x > 0.0 {
                if let Some(run) = runs.last_mut() {
                    run.push(format!("{:.1},{:.1}", px(x), py(y)));
                }
            } else if runs.last().is_some_and(|r| !r.is_empty()) {
                runs.push(Vec::new());
            }
        }
        for run in &runs {
            if run.len() > 1 {
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"#,
                    run.join(" ")
                );
            }
            for p in run {
                if let Some((cx, cy)) = p.split_once(',') {
                    let _ = writeln!(s, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>"#);
                }
            }
        }
        let ly = TOP + 20.0 + 22.0 * i as f64;
        let lx = LEFT + pw + 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/><text x="{}" y="{}">{}</text>"#,
            lx + 30.0,
            lx + 36.0,
            ly + 4.0,
            se.label
        );
    }
}

/// `1000` as `1,000`, `0.001` as `0.001`, `1e6` as `1M`.
fn tick_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e4 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// A round step (1, 2 or 5 times a power of ten) at least `raw`.
pub(crate) fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.max(1.0).log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}
