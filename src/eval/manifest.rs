//! Evaluation sets: a folder with `manifest.tsv` (a header line naming the
//! columns; `file` and `reference_text` are required, `duration_s` is optional;
//! `file` is relative to the folder). Bad lines and missing files are reported
//! and counted, never fatal.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// One utterance of a set.
#[derive(Clone, Debug, PartialEq)]
pub struct Utterance {
    /// As written in the manifest.
    pub file: String,
    pub path: PathBuf,
    pub reference: String,
    /// From the manifest, if given and valid.
    pub duration_s: Option<f64>,
}

/// Why an entry of a set was not evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// 1-based line of the manifest.
    pub line: usize,
    /// The file, when the line named one.
    pub file: Option<String>,
    pub kind: ProblemKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    BadLine,
    MissingFile,
    Undecodable,
}

impl ProblemKind {
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::BadLine => "bad manifest line",
            ProblemKind::MissingFile => "missing audio file",
            ProblemKind::Undecodable => "undecodable audio file",
        }
    }
}

/// A parsed set: its utterances and the lines that were skipped.
#[derive(Clone, Debug)]
pub struct EvalSet {
    /// The folder's name (`test-clean`).
    pub name: String,
    pub dir: PathBuf,
    pub utterances: Vec<Utterance>,
    pub problems: Vec<Problem>,
}

impl EvalSet {
    /// Reads `dir/manifest.tsv`. Fails only when the manifest itself cannot be
    /// read or its header lacks the required columns.
    pub fn load(dir: &Path) -> Result<EvalSet> {
        let manifest = dir.join("manifest.tsv");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| Error::io(manifest.display().to_string(), e))?;
        let name = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        let (utterances, problems) = parse(&text, dir, &manifest.display().to_string())?;
        Ok(EvalSet {
            name,
            dir: dir.to_path_buf(),
            utterances,
            problems,
        })
    }
}

/// Parses manifest text; `dir` resolves the file column, `what` names the
/// manifest in errors.
pub fn parse(text: &str, dir: &Path, what: &str) -> Result<(Vec<Utterance>, Vec<Problem>)> {
    let mut lines = text.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) => break l,
            None => return Err(Error::Invalid(format!("{what}: empty manifest"))),
        }
    };
    let columns: Vec<&str> = header.split('\t').map(str::trim).collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(file_col), Some(text_col)) = (col("file"), col("reference_text")) else {
        return Err(Error::Invalid(format!(
            "{what}: the header line must name the columns 'file' and 'reference_text' (tab-separated), found {columns:?}"
        )));
    };
    let duration_col = col("duration_s");
    let needed = file_col.max(text_col) + 1;
    let (mut utterances, mut problems) = (Vec::new(), Vec::new());
    for (k, line) in lines {
        let line_no = k + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |message: String, file: Option<String>| Problem {
            line: line_no,
            file,
            kind: ProblemKind::BadLine,
            message,
        };
        if fields.len() < needed {
            problems.push(bad(
                format!(
                    "{} tab-separated fields, the header needs at least {needed}",
                    fields.len()
                ),
                None,
            ));
            continue;
        }
        let file = fields[file_col].trim();
        if file.is_empty() {
            problems.push(bad("empty file name".into(), None));
            continue;
        }
        let duration_s = match duration_col.and_then(|c| fields.get(c)) {
            Some(d) if !d.trim().is_empty() => match d.trim().parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
                _ => {
                    problems.push(bad(
                        format!("duration_s '{}' is not a number", d.trim()),
                        Some(file.to_string()),
                    ));
                    continue;
                }
            },
            _ => None,
        };
        let path = dir.join(file);
        if !path.is_file() {
            problems.push(Problem {
                line: line_no,
                file: Some(file.to_string()),
                kind: ProblemKind::MissingFile,
                message: format!("{}: no such file", path.display()),
            });
            continue;
        }
        utterances.push(Utterance {
            file: file.to_string(),
            path,
            reference: fields[text_col].trim().to_string(),
            duration_s,
        });
    }
    Ok((utterances, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_and_missing_files_are_counted() {
        let dir = std::env::temp_dir().join(format!("sotto-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.wav"), b"x").unwrap();
        std::fs::write(dir.join("b.wav"), b"x").unwrap();
        let text = "file\tduration_s\treference_text\tsource\n\
                    a.wav\t1.5\tHELLO THERE\tx\n\
                    \n\
                    only-one-field\n\
                    nope.wav\t2\tGONE\n\
                    b.wav\tabc\tBAD DURATION\n\
                    \t1\tNO FILE\n\
                    b.wav\t\tNO DURATION\r\n";
        let (u, p) = parse(text, &dir, "test").unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].reference, "HELLO THERE");
        assert_eq!(u[0].duration_s, Some(1.5));
        assert_eq!(u[1].reference, "NO DURATION");
        assert_eq!(u[1].duration_s, None);
        let kinds: Vec<(usize, ProblemKind)> = p.iter().map(|p| (p.line, p.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (4, ProblemKind::BadLine),
                (5, ProblemKind::MissingFile),
                (6, ProblemKind::BadLine),
                (7, ProblemKind::BadLine),
            ]
        );
        assert!(parse("file\ttext\n", &dir, "t").is_err());
        assert!(parse("", &dir, "t").is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
