//! A bar chart of percentages, one labelled bar each with its value on top: the probe's accuracy
//! by layer.

use std::path::Path;

use anyhow::{anyhow, ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{register_font, FONT};

const BAR: i32 = 70;
const GAP: i32 = 30;
const HEIGHT: i32 = 320;
const BLUE: RGBColor = RGBColor(31, 119, 180);

/// Draws `bars` (label, percent in 0..=100) into a PNG at `path`, on a 0-100% axis.
pub fn draw(path: &Path, title: &str, axis: &str, bars: &[(String, f64)]) -> Result<()> {
    ensure!(!bars.is_empty(), "a bar chart of no bars");
    ensure!(
        bars.iter().all(|(_, v)| v.is_finite() && (0.0..=100.0).contains(v)),
        "bar values are percentages: {bars:?}"
    );
    register_font();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let (left, top, bottom, right) = (80, 60, 50, 30);
    let plot_w = (BAR + GAP) * bars.len() as i32 + GAP;
    let size = ((left + plot_w + right).max(520), top + HEIGHT + bottom);
    let root = BitMapBackend::new(path, (size.0 as u32, size.1 as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let centre = Pos::new(HPos::Center, VPos::Center);
    root.draw(&Text::new(title.to_string(), (size.0 / 2, 24), text(16, centre))).map_err(|e| err(&e))?;
    let y_of = |percent: f64| top + HEIGHT - (percent / 100.0 * HEIGHT as f64).round() as i32;
    for tick in (0..=100).step_by(10) {
        let y = y_of(tick as f64);
        let line = if tick == 0 { BLACK } else { RGBColor(225, 225, 225) };
        root.draw(&PathElement::new(vec![(left, y), (left + plot_w, y)], line)).map_err(|e| err(&e))?;
        root.draw(&Text::new(format!("{tick}"), (left - 8, y), text(13, Pos::new(HPos::Right, VPos::Center))))
            .map_err(|e| err(&e))?;
    }
    let axis_label = text(13, centre).transform(FontTransform::Rotate270);
    root.draw(&Text::new(axis.to_string(), (22, top + HEIGHT / 2), axis_label)).map_err(|e| err(&e))?;
    for (i, (label, value)) in bars.iter().enumerate() {
        let x = left + GAP + (BAR + GAP) * i as i32;
        let y = y_of(*value);
        root.draw(&Rectangle::new([(x, y), (x + BAR, top + HEIGHT)], BLUE.filled())).map_err(|e| err(&e))?;
        let on_top = Pos::new(HPos::Center, VPos::Bottom);
        root.draw(&Text::new(format!("{value:.1}"), (x + BAR / 2, y - 4), text(13, on_top))).map_err(|e| err(&e))?;
        root.draw(&Text::new(label.clone(), (x + BAR / 2, top + HEIGHT + 16), text(14, centre)))
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn text(size: u32, pos: Pos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).pos(pos).color(&BLACK)
}
