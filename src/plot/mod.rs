//! PNG charts: the training loss curve; for `probe`, a confusion matrix, a t-SNE map and accuracy
//! by layer as bars.
//! Text uses DejaVu Sans compiled into the binary, so charts render the same with no system fonts.

pub mod bars;
pub mod confusion;
pub mod loss_curve;
pub mod scatter;

use std::sync::Once;

use plotters::style::FontStyle;

/// The font family name charts ask for.
pub const FONT: &str = "sans-serif";

pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .unwrap_or_else(|_| panic!("the embedded DejaVu Sans font does not parse"));
    });
}
