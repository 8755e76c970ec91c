//! The probe's confusion matrix as a heat map: one cell per (true, predicted) class pair holding
//! its count, shaded by the count's share of the true class's clips.

use std::path::Path;

use anyhow::{anyhow, ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{register_font, FONT};

const CELL: i32 = 44;
const BLUE: (f64, f64, f64) = (31.0, 119.0, 180.0);

/// Draws `counts[true][predicted]` with the class `names` (rows labelled `index name`, columns by
/// index) into a PNG at `path`.
pub fn draw(path: &Path, title: &str, names: &[String], counts: &[Vec<usize>]) -> Result<()> {
    let k = counts.len();
    ensure!(k > 0 && names.len() == k && counts.iter().all(|r| r.len() == k), "a square matrix with a name per class");
    register_font();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let longest = names.iter().enumerate().map(|(i, n)| format!("{i} {n}").chars().count()).max().unwrap_or(0);
    let left = 40 + 8 * longest as i32;
    let (top, bottom, right) = (60, 50, 20);
    let size = (left + CELL * k as i32 + right, top + CELL * k as i32 + bottom);

    let root = BitMapBackend::new(path, (size.0 as u32, size.1 as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let centre = Pos::new(HPos::Center, VPos::Center);
    root.draw(&Text::new(title.to_string(), (size.0 / 2, 20), text(18, centre, &BLACK))).map_err(|e| err(&e))?;
    for (i, row) in counts.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        let y = top + CELL * i as i32;
        let label = format!("{i} {}", names[i]);
        root.draw(&Text::new(label, (left - 8, y + CELL / 2), text(14, Pos::new(HPos::Right, VPos::Center), &BLACK)))
            .map_err(|e| err(&e))?;
        for (j, &count) in row.iter().enumerate() {
            let x = left + CELL * j as i32;
            let share = count as f64 / total;
            let shade = |c: f64| (255.0 - share * (255.0 - c)) as u8;
            let fill = RGBColor(shade(BLUE.0), shade(BLUE.1), shade(BLUE.2));
            root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], fill.filled())).map_err(|e| err(&e))?;
            root.draw(&Rectangle::new([(x, y), (x + CELL, y + CELL)], RGBColor(200, 200, 200))).map_err(|e| err(&e))?;
            if count > 0 {
                let ink = if share > 0.5 { &WHITE } else { &BLACK };
                root.draw(&Text::new(count.to_string(), (x + CELL / 2, y + CELL / 2), text(14, centre, ink)))
                    .map_err(|e| err(&e))?;
            }
        }
    }
    let below = top + CELL * k as i32;
    for j in 0..k {
        let x = left + CELL * j as i32 + CELL / 2;
        root.draw(&Text::new(j.to_string(), (x, below + 12), text(14, centre, &BLACK))).map_err(|e| err(&e))?;
    }
    let axes = "rows: true class; columns: predicted class";
    root.draw(&Text::new(axes, (left + CELL * k as i32 / 2, below + 36), text(14, centre, &BLACK)))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

fn text(size: u32, pos: Pos, color: &'static RGBColor) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).pos(pos).color(color)
}
