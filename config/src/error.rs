//! Errors reported by loading and validation, and the collector that gathers
//! them so that one run reports every problem in a file, not just the first.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a configuration file: where it is and what to do about it.
///
/// Displays as `{file}:{line}: {key}: {message}`; the line and key parts are
/// left out when they do not apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}{}: {message}", .file.display(), line_part(*.line), key_part(.key))]
pub struct ConfigError {
    /// The file the problem is in.
    pub file: PathBuf,
    /// The 1-based line of the offending key or value, or of the enclosing
    /// table header when a key is missing; `None` when no line applies.
    pub line: Option<usize>,
    /// Dotted path of the key, e.g. `peers[1].name` or `store.endpoints`
    /// (array indices are 0-based); empty for file-level problems.
    pub key: String,
    /// What is wrong, including a hint or the operator's next step.
    pub message: String,
}

fn line_part(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn key_part(key: &str) -> String {
    if key.is_empty() {
        String::new()
    } else {
        format!(": {key}")
    }
}

/// Every problem found in one configuration file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Returns the errors whose key is exactly `key`.
    pub fn for_key<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a ConfigError> + 'a {
        self.0.iter().filter(move |e| e.key == key)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors for one file and maps byte offsets to 1-based lines.
#[derive(Debug)]
pub(crate) struct Diag {
    file: PathBuf,
    base_dir: PathBuf,
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl Diag {
    /// Creates a collector for `text` read from `file` (an absolute path).
    pub(crate) fn new(file: &Path, text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Self {
            file: file.to_path_buf(),
            base_dir,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// Returns the 1-based line of the start of `span`.
    pub(crate) fn line(&self, span: Option<Range<usize>>) -> Option<usize> {
        let start = span?.start;
        Some(self.line_starts.partition_point(|&s| s <= start))
    }

    /// Resolves a path from the file against the file's directory.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        self.base_dir.join(path)
    }

    /// Records a problem.
    pub(crate) fn push(&mut self, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Returns how many problems were recorded so far.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Returns whether any problem was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Returns the recorded problems, sorted by line (stable for equal lines).
    pub(crate) fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.line.unwrap_or(0));
        ConfigErrors(self.errors)
    }
}
