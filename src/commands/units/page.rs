//! The units page: one HTML file with its style and script inline (nothing is fetched from the
//! network when it is viewed), beside the `excerpts/` folder its players point at. A short script
//! at the end loads every excerpt once, one at a time, and says in the status line at the top
//! whether all of them load, naming any that do not; a script error shows there too. (Players are
//! `preload="none"`, so a page of a thousand units opens at once.)

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::UnitsReport;

/// The page's file name in the output folder.
pub const FILE: &str = "index.html";

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:70em;color:#222}\
h2{font-size:1.1em;margin:1.5em 0 .3em}h2 span{font-weight:normal;color:#555}\
table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:left;border-bottom:1px solid #ddd}\
td.num{text-align:right}.pure{color:#1a7f37}#status{padding:.4em;background:#eee}\
#status[data-state=ok]{background:#dafbe1}#status[data-state=error]{background:#ffebe9}\
audio{height:2em;vertical-align:middle}";

/// Loads each distinct excerpt in turn and reports in `#status`; `data-state` ends as `ok` or
/// `error`, which tests read from the rendered page.
const CHECK: &str = r#"(function () {
  var status = document.getElementById('status'), scriptError = false;
  function fail(text) { status.dataset.state = 'error'; status.textContent = text; }
  window.addEventListener('error', function (e) { scriptError = true; fail('Script error: ' + e.message); });
  var sources = [];
  document.querySelectorAll('audio').forEach(function (a) {
    var s = a.getAttribute('src');
    if (sources.indexOf(s) < 0) sources.push(s);
  });
  var probe = new Audio(), next = 0, missing = [];
  function step() {
    if (next >= sources.length) {
      if (scriptError) return;
      if (missing.length) fail(missing.length + ' of ' + sources.length + ' excerpts do not load: ' + missing.join(', '));
      else { status.dataset.state = 'ok'; status.textContent = 'All ' + sources.length + ' excerpt files load.'; }
      return;
    }
    var source = sources[next++];
    probe.onloadedmetadata = step;
    probe.onerror = function () { missing.push(source); step(); };
    probe.preload = 'metadata';
    probe.src = source;
    probe.load();
  }
  step();
})();"#;

/// Writes the page for `report` to `report.page`.
pub fn write(report: &UnitsReport) -> Result<()> {
    std::fs::write(&report.page, html(report))
        .with_context(|| format!("{}: cannot write the page", report.page.display()))
}

fn html(r: &UnitsReport) -> String {
    let mut s = String::new();
    let title = format!("What the units of {} detect", r.layer);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(s, "<h1>{}</h1>", esc(&title));
    let _ = writeln!(
        s,
        "<p>Weights <code>{}</code>, clips <code>{}</code>.</p>",
        esc(&r.weights.display().to_string()),
        esc(&r.dir.display().to_string())
    );
    let _ = writeln!(s, "<ul id=\"summary\">");
    for line in r.summary() {
        let _ = writeln!(s, "<li>{}</li>", esc(&line));
    }
    let _ = writeln!(s, "</ul>");
    let _ = writeln!(s, "<p id=\"status\" data-state=\"checking\">Checking that every excerpt loads&hellip;</p>");
    let pure: Vec<String> = r
        .units
        .iter()
        .filter(|u| u.purity.is_some_and(|p| p >= r.pure_threshold - 1e-12))
        .map(|u| format!("<a href=\"#unit-{0}\">{0}</a> {1}", u.unit, esc(u.class.as_deref().unwrap_or(""))))
        .collect();
    if r.pure_units.is_some() {
        let _ =
            writeln!(s, "<p>Pure units shown: {}</p>", if pure.is_empty() { "none".into() } else { pure.join(", ") });
    }
    for u in &r.units {
        let purity = match (u.purity, &u.class) {
            (Some(p), Some(c)) => {
                let class = if p >= r.pure_threshold - 1e-12 { " class=\"pure\"" } else { "" };
                format!(" &middot; <span{class}>{:.0}% {}</span>", 100.0 * p, esc(c))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "<section id=\"unit-{0}\"><h2>unit {0} <span>selectivity {1:.2} &middot; max {2:.3} &middot; mean {3:.3}{purity}</span></h2>",
            u.unit, u.selectivity, u.max, u.mean
        );
        let class_header = if r.classes.is_empty() { "" } else { "<th>class</th>" };
        let _ = writeln!(
            s,
            "<table><tr><th>#</th><th>clip</th>{class_header}<th>activation</th><th>seconds</th><th>listen</th></tr>"
        );
        for (rank, e) in u.excerpts.iter().enumerate() {
            let class = if r.classes.is_empty() {
                String::new()
            } else {
                format!("<td>{}</td>", esc(e.class.as_deref().unwrap_or("(not in meta.csv)")))
            };
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td>{class}<td class=\"num\">{:.3}</td><td>{:.2}&ndash;{:.2}</td>\
                 <td><audio controls preload=\"none\" src=\"{}\"></audio></td></tr>",
                rank + 1,
                esc(&e.clip),
                e.activation,
                e.seconds[0],
                e.seconds[1],
                esc(&e.wav)
            );
        }
        let _ = writeln!(s, "</table></section>");
    }
    let _ = write!(s, "<script>\n{CHECK}\n</script>\n</body></html>\n");
    s
}

/// Text for HTML content and attribute values.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
