//! SVG plots of the report (plotters, SVG backend only: no fonts or image libraries).

use crate::report::LoadReport;
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use std::path::Path;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// The measured-window histogram with `tag` (`all`, `read`, `write`) from a report's HDR
/// log (values in ns).
pub fn histogram(report: &LoadReport, tag: &str) -> Option<Histogram<u64>> {
    for entry in IntervalLogIterator::new(report.hdr_log.as_bytes()) {
        if let Ok(LogEntry::Interval(h)) = entry {
            if h.tag().map(|t| t.as_str()) == Some(tag) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(h.encoded_histogram())
                    .ok()?;
                return Deserializer::new().deserialize(&mut &bytes[..]).ok();
            }
        }
    }
    None
}

/// (1 / (1 - quantile), latency in us) from the 50th percentile up to the largest
/// quantile the histogram resolves: the usual HdrHistogram percentile plot.
pub fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    if h.is_empty() {
        return pts;
    }
    let max_x = (h.len() as f64).max(2.0);
    let mut k = 3.0; // 10^(3/10) = 2 -> the 50th percentile
    loop {
        let x = 10f64.powf(k / 10.0);
        if x >= max_x || x > 1e6 {
            break;
        }
        let q = 1.0 - 1.0 / x;
        pts.push((x, h.value_at_quantile(q) as f64 / 1000.0));
        k += 1.0;
    }
    pts.push((max_x, h.max() as f64 / 1000.0));
    pts
}

fn pct_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    if p < 99.0 {
        format!("{p:.0}%")
    } else {
        let digits = ((-(1.0 - p / 100.0).log10()).round() as usize).saturating_sub(2);
        format!("{p:.digits$}%")
    }
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("plot: {e:?}")
}

fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (1.0, 10.0);
    }
    (lo / 1.5, hi * 1.5)
}

/// Latency by percentile for several runs (x: percentile on a log scale of 1/(1-q)).
pub fn percentile_curves(
    path: &Path,
    title: &str,
    runs: &[(String, &LoadReport)],
) -> Result<(), String> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .filter_map(|(l, r)| histogram(r, "all").map(|h| (l.clone(), percentile_points(&h))))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let max_x = curves
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(10.0, f64::max);
    let (ylo, yhi) = log_range(curves.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((2f64..max_x * 1.05).log_scale(), (ylo..yhi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (us, from intended send time)")
        .x_label_formatter(&|x| pct_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err)?;
    for (i, (label, pts)) in curves.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// One line per series over a shared x axis; `marker` draws a vertical line (e.g. the
/// moment of a failover). `log_y` for latencies.
pub fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    marker: Option<(f64, &str)>,
    log_y: bool,
) -> Result<(), String> {
    let xs = series.iter().flat_map(|(_, p)| p.iter().map(|x| x.0));
    let (mut xlo, mut xhi) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if xlo > xhi {
        (xlo, xhi) = (0.0, 1.0);
    }
    if let Some((m, _)) = marker {
        xlo = xlo.min(m);
        xhi = xhi.max(m);
    }
    if xhi <= xlo {
        xhi = xlo + 1.0;
    }
    let ys = || series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1));
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr, $ylo:expr, $yhi:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .y_label_formatter(&|y| {
                    if *y >= 10.0 || *y == 0.0 {
                        format!("{y:.0}")
                    } else {
                        format!("{y:.2}")
                    }
                })
                .draw()
                .map_err(err)?;
            if let Some((m, label)) = marker {
                chart
                    .draw_series(LineSeries::new(
                        vec![(m, $ylo), (m, $yhi)],
                        BLACK.stroke_width(1),
                    ))
                    .map_err(err)?
                    .label(label.to_string())
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
            }
            for (i, (label, pts)) in series.iter().enumerate() {
                let c = color(i);
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().copied().filter(|p| !log_y || p.1 > 0.0),
                        c.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    if log_y {
        let (ylo, yhi) = log_range(ys());
        let chart = builder
            .build_cartesian_2d(xlo..xhi, (ylo..yhi).log_scale())
            .map_err(err)?;
        draw!(chart, ylo, yhi);
    } else {
        let yhi = ys().fold(0.0, f64::max).max(1e-9) * 1.1;
        let chart = builder
            .build_cartesian_2d(xlo..xhi, 0f64..yhi)
            .map_err(err)?;
        draw!(chart, 0.0, yhi);
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_points_climb_to_the_max() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let pts = percentile_points(&h);
        assert!((pts[0].1 - 5000.0).abs() < 10.0, "{pts:?}");
        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert!((pts.last().unwrap().1 - 10_000.0).abs() < 10.0);
        assert_eq!(pct_label(2.0), "50%");
        assert_eq!(pct_label(100.0), "99%");
        assert_eq!(pct_label(1000.0), "99.9%");
    }
}
