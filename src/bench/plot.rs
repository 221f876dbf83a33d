//! The roofline as a log-log plot (SVG and PNG, plotters): arithmetic
//! intensity (operations per byte) against GOP/s, one horizontal line per
//! compute ceiling, one diagonal per memory level, and a point per kernel
//! row and model stage that does arithmetic.
use super::roofline::{Report, Row};
use sotto::eval::report::{register_font, FONT};
use sotto::{Error, Result};
use sotto_kernels::probe::Roof;
use std::path::{Path, PathBuf};

/// Writes `roofline.svg` and `roofline.png` into `dir`.
pub fn plot(report: &Report, dir: &Path, font: Option<&Path>) -> Result<Vec<PathBuf>> {
    register_font(font).map_err(Error::Invalid)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let svg = dir.join("roofline.svg");
    let png = dir.join("roofline.png");
    {
        let root = plotters::prelude::SVGBackend::new(&svg, (1100, 750));
        draw(root, report).map_err(|e| Error::Invalid(format!("{}: {e}", svg.display())))?;
    }
    {
        let root = plotters::prelude::BitMapBackend::new(&png, (1100, 750));
        draw(root, report).map_err(|e| Error::Invalid(format!("{}: {e}", png.display())))?;
    }
    Ok(vec![svg, png])
}

/// The point series: kernel families by M = 1 / few rows / many rows, attention, model stages.
fn series(report: &Report) -> Vec<(String, Vec<&Row>)> {
    fn push<'r>(out: &mut Vec<(String, Vec<&'r Row>)>, name: &str, r: &'r Row) {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(r),
            None => out.push((name.to_string(), vec![r])),
        }
    }
    let mut out = Vec::new();
    for r in report.kernels.iter().filter(|r| r.ops > 0.0) {
        let name = if r.name.starts_with("attention") {
            "attention".to_string()
        } else {
            let m: usize = r
                .name
                .rsplit("M=")
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            match m {
                0..=1 => "linear M=1".to_string(),
                2..=16 => "linear M≤16".to_string(),
                _ => "linear M>16".to_string(),
            }
        };
        push(&mut out, &name, r);
    }
    if let Some(m) = &report.model {
        for r in m.stages_window.iter().filter(|r| r.ops > 0.0) {
            push(&mut out, "model: per window", r);
        }
        for r in m.stages_token.iter().filter(|r| r.ops > 0.0) {
            push(&mut out, "model: per token", r);
        }
    }
    out
}

fn draw<B: plotters::prelude::DrawingBackend>(
    backend: B,
    report: &Report,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    B::ErrorType: 'static,
{
    use plotters::prelude::*;
    let c = &report.ceilings;
    let root = backend.into_drawing_area();
    root.fill(&WHITE)?;
    let series = series(report);
    let points = series.iter().flat_map(|(_, v)| v.iter());
    let x_min = points
        .clone()
        .map(|r| r.intensity())
        .fold(f64::INFINITY, f64::min)
        .min(0.1);
    let x_max = points
        .clone()
        .map(|r| r.intensity())
        .fold(0.0, f64::max)
        .max(100.0);
    let peak = c.compute_roof(Roof::F32).max(c.compute_roof(Roof::Int8)) / 1e9;
    let y_min = points
        .map(|r| r.achieved_gops())
        .fold(f64::INFINITY, f64::min)
        .clamp(1e-3, 1.0);
    let (x_min, x_max, y_min, y_max) = (x_min / 2.0, x_max * 2.0, y_min / 2.0, peak * 3.0);
    let title = format!(
        "roofline: {}, {} thread{}",
        c.kernels,
        c.threads,
        if c.threads == 1 { "" } else { "s" }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("arithmetic intensity (operations / byte)")
        .y_desc("GOP/s")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()?;
    // Ceilings: each memory level's diagonal up to the highest compute roof,
    // each compute roof from where the fastest level meets it.
    let grey = RGBColor(110, 110, 110);
    let text = (FONT, 12).into_font().color(&grey);
    for l in &c.levels {
        let bw = l.bw() / 1e9;
        let x_end = (peak / bw).min(x_max);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x_min, bw * x_min), (x_end, bw * x_end)],
            grey.stroke_width(1),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{} {:.0} GB/s", l.name, bw),
            (x_min * 1.1, bw * x_min * 1.25),
            text.clone(),
        )))?;
    }
    let fastest = c.levels.iter().map(|l| l.bw() / 1e9).fold(0.0, f64::max);
    for roof in [Roof::F32, Roof::Int8] {
        let r = c.compute_roof(roof) / 1e9;
        let name = c
            .compute
            .iter()
            .filter(|p| p.roof == roof)
            .max_by(|a, b| a.rate_n.total_cmp(&b.rate_n))
            .map_or("", |p| p.name);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![((r / fastest).max(x_min), r), (x_max, r)],
            BLACK.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{name}: {r:.0} GOP/s"),
            ((x_max / 60.0).max(x_min), r / 1.3),
            (FONT, 13).into_font(),
        )))?;
    }
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, RGBColor(230, 140, 0)];
    for (i, (name, rows)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        chart
            .draw_series(
                rows.iter()
                    .map(|r| Circle::new((r.intensity(), r.achieved_gops()), 4, colour.filled())),
            )?
            .label(name.as_str())
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()?;
    root.present()?;
    Ok(())
}
