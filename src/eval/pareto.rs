//! WER against bits per weight (the quantization study's Pareto view): one point per
//! scheme × method, the points no other point beats on both axes joined as the
//! front, the formats the study itself measured (int8 dynamic / static, int4 HQQ,
//! nf4, nf4-dq, int3) drawn as squares for context, sotto's added methods (GPTQ,
//! AWQ, SmoothQuant, mixed precision) as circles.
use super::report::{register_font, FONT};
use crate::format::ModelFile;
use crate::quantize::is_quantizable;
use crate::{Error, Result};
use std::path::Path;

/// The schemes of the study's own formats (`sotto eval` names).
pub const STUDY_SCHEMES: &[&str] = &[
    "f16",
    "int8",
    "int8-linear",
    "int8-tensor",
    "int8-static",
    "int4-hqq",
    "nf4",
    "nf4-dq",
    "int3-hqq",
];

/// Bits per weight over the tensors `sotto quantize` packs (scales and zero-points
/// included; a tensor left in f16 counts 16).
pub fn bits_per_weight(file: &ModelFile) -> f64 {
    let (mut bytes, mut elems) = (0u64, 0u64);
    for t in file.tensors().iter().filter(|t| is_quantizable(t)) {
        bytes += t.len;
        elems += t.elements() as u64;
    }
    bytes as f64 * 8.0 / elems.max(1) as f64
}

#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub label: String,
    pub bits: f64,
    pub wer: f64,
    /// One of the study's formats (drawn as a square).
    pub study: bool,
}

/// Whether each point is on the Pareto front (no other point has fewer or equal
/// bits and a lower WER, or fewer bits and an equal WER).
pub fn on_front(points: &[Point]) -> Vec<bool> {
    points
        .iter()
        .map(|p| {
            !points
                .iter()
                .any(|q| (q.bits <= p.bits && q.wer < p.wer) || (q.bits < p.bits && q.wer <= p.wer))
        })
        .collect()
}

/// The points of one set from `sotto eval`'s JSON (`--json` / `eval.json`): every
/// row of `set` with status ok that scored all of the set's utterances (an
/// interrupted run leaves a partial row), its bits per weight read from the row's file.
pub fn points_from_json(json: &serde_json::Value, set: &str) -> Result<Vec<Point>> {
    let rows = json["results"]
        .as_array()
        .ok_or_else(|| Error::Invalid("eval JSON has no results".into()))?;
    let total = json["sets"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"].as_str() == Some(set)))
        .and_then(|s| s["utterances"].as_u64());
    let mut out = Vec::new();
    for r in rows {
        if r["set"].as_str() != Some(set)
            || r["status"].as_str() != Some("ok")
            || r["utterances_done"].as_u64() != total
        {
            continue;
        }
        let (Some(scheme), Some(file), Some(wer)) =
            (r["scheme"].as_str(), r["file"].as_str(), r["wer"].as_f64())
        else {
            continue;
        };
        let bits = bits_per_weight(&ModelFile::open(Path::new(file))?);
        out.push(Point {
            label: scheme.to_string(),
            bits,
            wer: 100.0 * wer,
            study: STUDY_SCHEMES.contains(&scheme),
        });
    }
    Ok(out)
}

/// Draws `series` (name, points) into `svg` (an SVG file).
pub fn plot(
    title: &str,
    series: &[(String, Vec<Point>)],
    svg: &Path,
    font: Option<&Path>,
) -> Result<()> {
    register_font(font).map_err(Error::Invalid)?;
    if let Some(dir) = svg.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    }
    let root = plotters::prelude::SVGBackend::new(svg, (1000, 650));
    draw(root, title, series).map_err(|e| Error::Invalid(format!("{}: {e}", svg.display())))
}

fn draw<B: plotters::prelude::DrawingBackend>(
    backend: B,
    title: &str,
    series: &[(String, Vec<Point>)],
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    B::ErrorType: 'static,
{
    use plotters::prelude::*;
    let root = backend.into_drawing_area();
    root.fill(&WHITE)?;
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let y_max = all.clone().map(|p| p.wer).fold(0.0f64, f64::max);
    let y_min = all.map(|p| p.wer).fold(f64::MAX, f64::min);
    let (y_lo, y_hi) = if y_min <= y_max {
        (
            (y_min * 0.8).floor().max(0.0),
            (y_max * 1.1).ceil().max(1.0),
        )
    } else {
        (0.0, 1.0)
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 22))
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(2.5f64..17.0f64, y_lo..y_hi)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("bits per weight (quantized tensors, scales included)")
        .y_desc("WER (%)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (set, pts)) in series.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let front = on_front(pts);
        let mut line: Vec<(f64, f64)> = pts
            .iter()
            .zip(&front)
            .filter(|(_, f)| **f)
            .map(|(p, _)| (p.bits, p.wer))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(std::iter::once(PathElement::new(
                line,
                colour.stroke_width(1),
            )))?
            .label(format!("{set} (line: Pareto front)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        let style = (FONT, 12).into_font().color(&colour);
        let mut placed: Vec<(f64, f64)> = Vec::new();
        for p in pts {
            let near = placed
                .iter()
                .filter(|(x, y)| {
                    (x - p.bits).abs() < 0.6 && (y - p.wer).abs() < 0.04 * (y_hi - y_lo)
                })
                .count() as i32;
            placed.push((p.bits, p.wer));
            let text = Text::new(
                format!("{} {:.2}", p.label, p.wer),
                (8, -12 + 13 * near),
                style.clone(),
            );
            if p.study {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((p.bits, p.wer))
                        + Rectangle::new([(-5, -5), (5, 5)], colour.filled())
                        + text,
                ))?;
            } else {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((p.bits, p.wer))
                        + Circle::new((0, 0), 5, colour.filled())
                        + text,
                ))?;
            }
        }
    }
    chart.draw_series(std::iter::once(
        EmptyElement::at((2.6, y_hi))
            + Text::new(
                "squares: the study's formats; circles: GPTQ / AWQ / SmoothQuant / mixed",
                (5, 5),
                (FONT, 13).into_font(),
            ),
    ))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_keeps_the_undominated_points() {
        let p = |label: &str, bits, wer| Point {
            label: label.into(),
            bits,
            wer,
            study: false,
        };
        let pts = vec![
            p("f16", 16.0, 10.0),
            p("int8", 8.5, 10.0),
            p("int4", 4.5, 13.0),
            p("int4-worse", 4.5, 14.0),
            p("int3", 3.5, 40.0),
            p("mixed", 4.6, 12.0),
        ];
        assert_eq!(on_front(&pts), vec![false, true, true, false, true, true]);
    }
}
