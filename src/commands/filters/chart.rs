//! conv1's filters as in the paper's Figure 5: per filter, its taps as a waveform (top) and its
//! magnitude frequency response on a kHz axis (bottom), four filters to a row.

use std::path::Path;

use anyhow::{anyhow, ensure, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::Filter;
use crate::plot::{register_font, FONT};

const COLUMNS: usize = 4;
const CELL: (u32, u32) = (300, 250);
const TITLE: u32 = 40;
const WAVE: RGBColor = RGBColor(31, 119, 180);
const RESPONSE: RGBColor = RGBColor(214, 39, 40);

/// Draws `filters` into a PNG at `path`.
pub fn draw(path: &Path, title: &str, filters: &[Filter]) -> Result<()> {
    ensure!(!filters.is_empty(), "no filters to draw");
    register_font();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let columns = COLUMNS.min(filters.len());
    let rows = filters.len().div_ceil(columns);
    let size = (CELL.0 * columns as u32, TITLE + CELL.1 * rows as u32);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (head, body) = root.split_vertically(TITLE);
    head.titled(title, (FONT, 18)).map_err(|e| err(&e))?;
    let cells = body.split_evenly((rows, columns));
    for (f, cell) in filters.iter().zip(&cells) {
        draw_one(cell, f).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn draw_one(cell: &DrawingArea<BitMapBackend, Shift>, f: &Filter) -> Result<(), Box<dyn std::error::Error>> {
    let (top, bottom) = cell.split_vertically(CELL.1 / 2 - 10);
    let peak = f.taps.iter().fold(0.0_f32, |m, &t| m.max(t.abs())).max(1e-12);
    let mut wave = ChartBuilder::on(&top)
        .caption(format!("filter {}: peak {:.0} Hz", f.index, f.peak_hz), (FONT, 14))
        .margin(6)
        .y_label_area_size(36)
        .build_cartesian_2d(0.0..(f.taps.len() - 1) as f32, -peak * 1.1..peak * 1.1)?;
    wave.configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .y_labels(3)
        .x_labels(0)
        .label_style((FONT, 10))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()?;
    wave.draw_series(LineSeries::new(f.taps.iter().enumerate().map(|(i, &t)| (i as f32, t)), WAVE.stroke_width(2)))?;
    let r = &f.response;
    let top_db = r.magnitude.iter().copied().fold(0.0, f64::max).max(1e-12);
    let khz = r.hz.last().copied().unwrap_or(1.0) / 1000.0;
    let mut resp = ChartBuilder::on(&bottom)
        .margin(6)
        .x_label_area_size(26)
        .y_label_area_size(36)
        .build_cartesian_2d(0.0..khz, 0.0..top_db * 1.05)?;
    resp.configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .x_desc("kHz")
        .x_labels(6)
        .y_labels(3)
        .label_style((FONT, 10))
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()?;
    let points = r.hz.iter().zip(&r.magnitude).map(|(&h, &m)| (h / 1000.0, m));
    resp.draw_series(LineSeries::new(points, RESPONSE.stroke_width(2)))?;
    Ok(())
}
