//! The confusion matrix over all held-out clips: row = true class, column = predicted class.

use std::fmt::Write as _;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion {
    /// `counts[true][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// From each clip's (true, predicted) class index, `classes` classes.
    pub fn new(classes: usize, pairs: impl IntoIterator<Item = (usize, usize)>) -> Confusion {
        let mut counts = vec![vec![0; classes]; classes];
        for (t, p) in pairs {
            counts[t][p] += 1;
        }
        Confusion { counts }
    }

    /// A table with one row per true class (`index name`), columns headed by predicted class
    /// index, and each row's recall.
    pub fn text(&self, names: &[String]) -> String {
        let k = self.counts.len();
        const CORNER: &str = "true \\ predicted";
        // Row labels are `NN name`; the column holds the longest of them and the corner label.
        let name_width = names.iter().map(|n| n.chars().count() + 4).max().unwrap_or(0).max(CORNER.len() + 1);
        let cell = self.counts.iter().flatten().max().map_or(1, |m| m.to_string().len()).max(k.to_string().len()) + 1;
        let mut s = format!("{CORNER:name_width$}");
        for j in 0..k {
            let _ = write!(s, "{j:>cell$}");
        }
        s.push_str("  recall\n");
        for (i, row) in self.counts.iter().enumerate() {
            let _ = write!(s, "{:name_width$}", format!("{i:>2} {}", names[i]));
            for c in row {
                let _ = write!(s, "{c:>cell$}");
            }
            let total: usize = row.iter().sum();
            let recall =
                if total == 0 { "-".to_string() } else { format!("{:.1}%", 100.0 * row[i] as f64 / total as f64) };
            let _ = writeln!(s, "  {recall:>6}");
        }
        s
    }
}
