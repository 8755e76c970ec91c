//! The loss curve written next to the checkpoints: one line per series (each head's training loss,
//! and the validation loss when there is one) against the step.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::{register_font, FONT};

/// A named line of (step, loss) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 5] =
    [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(0, 0, 0), RGBColor(214, 39, 40)];

/// Draws `series` into a 900 x 500 PNG at `path`, with a log-scale loss axis.
pub fn draw(path: &Path, title: &str, series: &[Series]) -> Result<()> {
    register_font();
    let finite = |v: f64| v.is_finite() && v > 0.0;
    let points = || series.iter().flat_map(|s| s.points.iter()).filter(|p| finite(p.1));
    let max_step = points().map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = points().fold((f64::INFINITY, 0.0_f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (lo, hi) = if lo.is_finite() { (lo * 0.9, hi * 1.1) } else { (1e-3, 1.0) };
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());

    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_step, (lo..hi).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (log scale)")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .y_label_formatter(&|loss| tick(*loss))
        .label_style((FONT, 14))
        .draw()
        .map_err(|e| err(&e))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(s.points.iter().copied().filter(|p| finite(p.1)), color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// A log-axis tick with three significant digits and no trailing zeros: plotters places ticks at
/// values such as 0.6000000000000001, whose full text runs over the axis title.
fn tick(value: f64) -> String {
    if !(value.is_finite() && value > 0.0) {
        return format!("{value}");
    }
    let decimals = (2 - value.log10().floor() as i32).clamp(0, 9) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        let cases = [(0.6000000000000001, "0.6"), (0.30000000000000004, "0.3"), (4.0, "4"), (0.05, "0.05")];
        for (value, want) in cases.into_iter().chain([(123.456, "123"), (0.001234, "0.00123"), (1.0, "1")]) {
            assert_eq!(tick(value), want, "{value}");
        }
    }

    #[test]
    fn writes_a_png() {
        let path = std::env::temp_dir().join(format!("sn-wgpu-loss-{}.png", std::process::id()));
        let curve = |scale: f64| (0..50).map(|s| (s as f64, scale * (-(s as f64) / 20.0).exp() + 0.1)).collect();
        let series = [
            Series { name: "objects".into(), points: curve(5.0) },
            Series { name: "scenes".into(), points: curve(3.0) },
        ];
        draw(&path, "test", &series).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_file(&path).unwrap();
    }
}
