//! A 2-D scatter of labelled points, coloured by label with a legend: the probe's t-SNE map.

use std::path::Path;

use anyhow::{anyhow, ensure, Result};
use plotters::prelude::*;

use super::{register_font, FONT};

/// matplotlib's tab10, cycled for more than ten labels.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Draws `points` into a 1000 x 700 PNG at `path`, point i coloured by `labels[i]` (an index into
/// `names`, which the legend beside the chart lists, so it hides no point).
pub fn draw(path: &Path, title: &str, points: &[[f64; 2]], labels: &[usize], names: &[String]) -> Result<()> {
    ensure!(points.len() == labels.len(), "{} points with {} labels", points.len(), labels.len());
    ensure!(labels.iter().all(|&l| l < names.len()), "a label with no name");
    register_font();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let range = |axis: usize| {
        let (lo, hi) =
            points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[axis]), hi.max(p[axis])));
        let pad = ((hi - lo) * 0.05).max(1e-9);
        if lo.is_finite() {
            (lo - pad)..(hi + pad)
        } else {
            -1.0..1.0
        }
    };

    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (plot, legend) = root.split_horizontally(800);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(range(0), range(1))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().light_line_style(WHITE).label_style((FONT, 12)).draw().map_err(|e| err(&e))?;
    for (k, name) in names.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let mine = points.iter().zip(labels).filter(|(_, &l)| l == k).map(|(p, _)| (p[0], p[1]));
        chart.draw_series(mine.map(|p| Circle::new(p, 4, color.filled()))).map_err(|e| err(&e))?;
        let y = 50 + 22 * k as i32;
        legend.draw(&Circle::new((12, y), 5, color.filled())).map_err(|e| err(&e))?;
        legend.draw(&Text::new(name.clone(), (24, y - 8), (FONT, 14).into_font())).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
