//! The chart, written as plain SVG text: ops/s against clients, one line per series (a
//! workload), one panel per backend. No font or system library is needed to produce it.

use std::fmt::Write;

const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 330.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 48.0;
const LEGEND_H: f64 = 56.0;

/// A line of the chart. Lines are drawn, and listed in the legend, in their `Ord` order.
pub trait Series: Copy + Ord {
    /// Its name in the legend and in the tooltips.
    fn name(self) -> &'static str;
    /// Its stroke colour (`"#1f77b4"`).
    fn color(self) -> &'static str;
    /// Drawn dashed: a reference the solid lines are compared with.
    fn dashed(self) -> bool;
}

/// One measurement: `series` with `clients` clients ran `ops_per_sec`.
#[derive(Debug, Clone, Copy)]
pub struct Point<S> {
    pub series: S,
    pub clients: usize,
    pub ops_per_sec: f64,
}

fn color<S: Series>(w: S) -> &'static str {
    w.color()
}

fn dash<S: Series>(w: S) -> &'static str {
    if w.dashed() {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    }
}

/// A round axis maximum at or above `max`, and its tick step.
fn nice_axis(max: f64) -> (f64, f64) {
    let max = max.max(1.0);
    let raw_step = max / 5.0;
    let magnitude = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| s * 5.0 >= max)
        .unwrap_or(10.0 * magnitude);
    ((max / step).ceil() * step, step)
}

fn short(n: f64) -> String {
    if n >= 1_000_000.0 {
        format!("{}M", trim(n / 1_000_000.0))
    } else if n >= 1_000.0 {
        format!("{}k", trim(n / 1_000.0))
    } else {
        trim(n)
    }
}

fn trim(n: f64) -> String {
    let s = format!("{n:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel per `(backend title, points)` in `panels`, in that order.
pub fn render<S: Series>(title: &str, panels: &[(String, Vec<Point<S>>)]) -> String {
    let n = panels.len().max(1) as f64;
    let width = PANEL_W * n;
    let height = PANEL_H + LEGEND_H + 28.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"white\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        width / 2.0,
        escape(title)
    );

    let mut seen: Vec<S> = Vec::new();
    for (i, (name, rows)) in panels.iter().enumerate() {
        let x0 = PANEL_W * i as f64;
        panel(&mut s, x0, 28.0, name, rows);
        for r in rows {
            if !seen.contains(&r.series) {
                seen.push(r.series);
            }
        }
    }
    seen.sort();

    // The legend, centred under the panels, items as wide as their names.
    let item_w = |w: &S| 48.0 + 7.0 * w.name().len() as f64;
    let mut lines: Vec<Vec<S>> = vec![Vec::new()];
    let mut used = 0.0;
    for w in &seen {
        if used + item_w(w) > width - 20.0 && !lines[lines.len() - 1].is_empty() {
            lines.push(Vec::new());
            used = 0.0;
        }
        used += item_w(w);
        let last = lines.len() - 1;
        lines[last].push(*w);
    }
    for (line, items) in lines.iter().enumerate() {
        let total: f64 = items.iter().map(item_w).sum();
        let mut x = (width - total) / 2.0;
        let y = 28.0 + PANEL_H + 18.0 + line as f64 * 20.0;
        for w in items {
            let _ = writeln!(
                s,
                "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2.5\"{}/>\
                 <circle cx=\"{}\" cy=\"{y}\" r=\"3.5\" fill=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{}</text>",
                x + 26.0,
                color(*w),
                dash(*w),
                x + 13.0,
                color(*w),
                x + 32.0,
                y + 4.0,
                w.name()
            );
            x += item_w(w);
        }
    }
    s.push_str("</svg>\n");
    s
}

fn panel<S: Series>(s: &mut String, x0: f64, y0: f64, name: &str, rows: &[Point<S>]) {
    let plot_l = x0 + LEFT;
    let plot_r = x0 + PANEL_W - RIGHT;
    let plot_t = y0 + TOP;
    let plot_b = y0 + PANEL_H - BOTTOM;

    let mut clients: Vec<usize> = rows.iter().map(|r| r.clients).collect();
    clients.sort_unstable();
    clients.dedup();
    let max = rows.iter().map(|r| r.ops_per_sec).fold(0.0, f64::max);
    let min = rows
        .iter()
        .map(|r| r.ops_per_sec)
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let (y_max, step) = nice_axis(max);
    // Lines two orders of magnitude apart (a buffer against one row) get a log axis, with a
    // tick per power of ten; otherwise the axis is linear from 0.
    let log = min.is_finite() && max / min > 100.0;
    let (log_lo, log_hi) = (min.max(1.0).log10().floor(), max.max(1.0).log10().ceil());

    let x_of = |c: usize| {
        let k = clients.iter().position(|&x| x == c).unwrap_or(0) as f64;
        if clients.len() <= 1 {
            (plot_l + plot_r) / 2.0
        } else {
            plot_l + 20.0 + k * (plot_r - plot_l - 40.0) / (clients.len() - 1) as f64
        }
    };
    let y_of = |v: f64| {
        if log {
            let t = (v.max(1.0).log10() - log_lo) / (log_hi - log_lo).max(1.0);
            plot_b - t * (plot_b - plot_t)
        } else {
            plot_b - v / y_max * (plot_b - plot_t)
        }
    };

    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        (plot_l + plot_r) / 2.0,
        y0 + 24.0,
        escape(name)
    );

    // Grid and y axis.
    let ticks: Vec<f64> = if log {
        (log_lo as i32..=log_hi as i32)
            .map(|k| 10f64.powi(k))
            .collect()
    } else {
        let mut ticks = Vec::new();
        let mut v = 0.0;
        while v <= y_max + step / 2.0 {
            ticks.push(v);
            v += step;
        }
        ticks
    };
    for v in ticks {
        let y = y_of(v);
        let _ = writeln!(
            s,
            "<line x1=\"{plot_l}\" y1=\"{y:.1}\" x2=\"{plot_r}\" y2=\"{y:.1}\" stroke=\"#e5e5e5\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            plot_l - 6.0,
            y + 4.0,
            short(v)
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{plot_l}\" y1=\"{plot_t}\" x2=\"{plot_l}\" y2=\"{plot_b}\" stroke=\"#333\"/>\
         <line x1=\"{plot_l}\" y1=\"{plot_b}\" x2=\"{plot_r}\" y2=\"{plot_b}\" stroke=\"#333\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 {} {})\">{}</text>",
        x0 + 16.0,
        (plot_t + plot_b) / 2.0,
        x0 + 16.0,
        (plot_t + plot_b) / 2.0,
        if log { "ops/s (log scale)" } else { "ops/s" }
    );

    // X axis: one tick per client count, evenly spaced.
    for &c in &clients {
        let x = x_of(c);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{plot_b}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#333\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">{c}</text>",
            plot_b + 5.0,
            plot_b + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">clients</text>",
        (plot_l + plot_r) / 2.0,
        plot_b + 36.0
    );

    // One line per series.
    let mut series: Vec<S> = rows.iter().map(|r| r.series).collect();
    series.sort();
    series.dedup();
    for w in series {
        let mut points: Vec<(usize, f64)> = rows
            .iter()
            .filter(|r| r.series == w)
            .map(|r| (r.clients, r.ops_per_sec))
            .collect();
        points.sort_by_key(|p| p.0);
        let path: Vec<String> = points
            .iter()
            .map(|&(c, v)| format!("{:.1},{:.1}", x_of(c), y_of(v)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>",
            path.join(" "),
            color(w),
            dash(w)
        );
        for &(c, v) in &points {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{}\"><title>{} {} clients: {:.0} ops/s</title></circle>",
                x_of(c),
                y_of(v),
                color(w),
                w.name(),
                c,
                v
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_is_round_and_covers_the_maximum() {
        assert_eq!(nice_axis(12_345.0), (12_500.0, 2_500.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
        let (max, step) = nice_axis(3_300.0);
        assert!(max >= 3_300.0 && (max / step) <= 6.0);
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short(15_000.0), "15k");
        assert_eq!(short(2_500.0), "2.5k");
        assert_eq!(short(0.0), "0");
    }
}
