//! Typed, error-collecting readers over one table of a span-preserving TOML
//! document. Each getter returns `None` after recording a precise error
//! (missing key, wrong type, unparsable value) so that callers carry on and
//! the whole file gets checked in one pass. Defaults come from the schema.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml_edit::{Item, TableLike};

use crate::error::Diag;
use crate::schema::{KeySpec, Need, TableSpec};
use crate::walk::{join, table_elements};

/// A value with the 1-based line it was read from (or, for a default, the
/// line of its table header).
#[derive(Debug, Clone)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub line: Option<usize>,
}

/// One table of the document, its schema, its dotted path and header line.
pub(crate) struct View<'a> {
    table: &'a dyn TableLike,
    spec: &'static TableSpec,
    path: String,
    line: Option<usize>,
}

impl<'a> View<'a> {
    /// Creates a view of the top-level table.
    pub fn root(table: &'a dyn TableLike, spec: &'static TableSpec) -> Self {
        Self {
            table,
            spec,
            path: String::new(),
            line: None,
        }
    }

    /// Returns the table's header line (`None` at the top level).
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// Returns the dotted path of `key` in this table.
    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Returns whether `key` is present in the file.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Returns the line of `key` if present, else the table's header line.
    pub fn key_line(&self, diag: &Diag, key: &str) -> Option<usize> {
        diag.line(self.table.key(key).and_then(|k| k.span()))
            .or(self.line)
    }

    fn spec_of(&self, key: &str) -> &'static KeySpec {
        self.spec
            .key(key)
            .unwrap_or_else(|| panic!("schema bug: `{key}` not in {}", self.spec.header))
    }

    /// Records that a required key is missing, at the table's header line.
    pub fn missing(&self, diag: &mut Diag, key: &str, why: &str) {
        let spec = self.spec_of(key);
        let place = if self.spec.header.is_empty() {
            "the file".to_string()
        } else {
            self.spec.header.to_string()
        };
        diag.push(
            self.line,
            &self.key_path(key),
            format!(
                "missing required key `{key}` ({}){why}; add it to {place}",
                spec.ty
            ),
        );
    }

    fn wrong_type(&self, diag: &mut Diag, key: &str, item: &Item, expected: &str) {
        let found = match item.as_value() {
            Some(v) => format!("{} `{}`", v.type_name(), v.to_string().trim()),
            None => item.type_name().to_string(),
        };
        let line = diag.line(item.span()).or(self.key_line(diag, key));
        diag.push(
            line,
            &self.key_path(key),
            format!("expected {expected}, found {found}"),
        );
    }

    /// Returns the string written for `key`, or its schema default.
    fn text(&self, diag: &mut Diag, key: &str, expected: &str) -> Option<Spanned<Cow<'a, str>>> {
        match self.table.get(key) {
            Some(item) => match item.as_str() {
                Some(s) => Some(Spanned {
                    value: Cow::Borrowed(s),
                    line: diag.line(item.span()),
                }),
                None => {
                    self.wrong_type(diag, key, item, expected);
                    None
                }
            },
            None => match self.spec_of(key).need {
                Need::Default(v) => Some(Spanned {
                    value: Cow::Borrowed(v),
                    line: self.line,
                }),
                Need::Required => {
                    self.missing(diag, key, "");
                    None
                }
                Need::Optional | Need::RequiredWhen(_) => None,
            },
        }
    }

    /// Reads a string and converts it with `parse`, whose error text is
    /// reported after `invalid value "..."`.
    pub fn parse<T>(
        &self,
        diag: &mut Diag,
        key: &str,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Spanned<T>> {
        let t = self.text(diag, key, expected)?;
        match parse(&t.value) {
            Ok(value) => Some(Spanned {
                value,
                line: t.line,
            }),
            Err(why) => {
                let msg = format!("invalid value \"{}\": {why}", t.value);
                diag.push(t.line, &self.key_path(key), msg);
                None
            }
        }
    }

    /// Reads a humantime duration such as `"500ms"` or `"5m"`.
    pub fn duration(&self, diag: &mut Diag, key: &str) -> Option<Spanned<Duration>> {
        self.parse(diag, key, "a duration string like \"5s\"", |s| {
            humantime::parse_duration(s)
                .map_err(|e| format!("{e}; write a duration like \"500ms\", \"5s\" or \"5m\""))
        })
    }

    /// Reads a duration that must be greater than zero.
    pub fn positive_duration(&self, diag: &mut Diag, key: &str) -> Option<Spanned<Duration>> {
        let v = self.duration(diag, key)?;
        if v.value.is_zero() {
            let msg = "must be greater than zero, e.g. \"1s\"";
            diag.push(v.line, &self.key_path(key), msg);
        }
        Some(v)
    }

    /// Reads a socket address such as `"0.0.0.0:7443"`.
    pub fn socket_addr(&self, diag: &mut Diag, key: &str) -> Option<Spanned<SocketAddr>> {
        self.parse(diag, key, "a string like \"0.0.0.0:7443\"", |s| {
            s.parse::<SocketAddr>().map_err(|_| {
                "not an IP socket address; write \"ip:port\", e.g. \"0.0.0.0:7443\" or \"[::]:7443\""
                    .to_string()
            })
        })
    }

    /// Reads a file path, resolved against the config file's directory.
    pub fn path(&self, diag: &mut Diag, key: &str) -> Option<Spanned<PathBuf>> {
        let t = self.text(diag, key, "a file path string")?;
        if t.value.trim().is_empty() {
            diag.push(t.line, &self.key_path(key), "path must not be empty");
            return None;
        }
        Some(Spanned {
            value: diag.resolve(&t.value),
            line: t.line,
        })
    }

    /// Reads an integer in `min..=max`; an absent key reads as its schema
    /// default (written as a plain number, e.g. `Default("1")`).
    pub fn integer(&self, diag: &mut Diag, key: &str, min: i64, max: i64) -> Option<Spanned<i64>> {
        self.ranged(diag, key, min, max, "an integer", |item| item.as_integer())
    }

    /// Reads a number (integer or float) in `min..=max`; an absent key reads
    /// as its schema default (a plain number, e.g. `Default("1")`).
    pub fn number(&self, diag: &mut Diag, key: &str, min: f64, max: f64) -> Option<Spanned<f64>> {
        self.ranged(diag, key, min, max, "a number", |item| {
            item.as_float().or(item.as_integer().map(|i| i as f64))
        })
    }

    /// Reads `key` with `read` (`expected` names what it takes), or its
    /// schema default when absent, and checks it lies in `min..=max`.
    fn ranged<T>(
        &self,
        diag: &mut Diag,
        key: &str,
        min: T,
        max: T,
        expected: &str,
        read: impl FnOnce(&Item) -> Option<T>,
    ) -> Option<Spanned<T>>
    where
        T: Copy + PartialOrd + std::fmt::Display + std::str::FromStr,
    {
        let (value, line) = match self.table.get(key) {
            Some(item) => match read(item) {
                Some(v) => (v, diag.line(item.span())),
                None => {
                    self.wrong_type(diag, key, item, expected);
                    return None;
                }
            },
            None => match self.spec_of(key).need {
                Need::Default(v) => match v.parse() {
                    Ok(v) => (v, self.line),
                    Err(_) => panic!("schema bug: the default of `{key}` is not {expected}"),
                },
                Need::Required => {
                    self.missing(diag, key, "");
                    return None;
                }
                Need::Optional | Need::RequiredWhen(_) => return None,
            },
        };
        if !(min..=max).contains(&value) {
            let msg = format!("{value} is out of range; use {min} to {max}");
            diag.push(line, &self.key_path(key), msg);
            return None;
        }
        Some(Spanned { value, line })
    }

    /// Reads a table of free-form string values, e.g. `[service.labels]`;
    /// absent reads as empty. The keys are not checked against a schema.
    pub fn string_map(
        &self,
        diag: &mut Diag,
        key: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let Some(item) = self.table.get(key) else {
            return Some(Default::default());
        };
        let Some(table) = item.as_table_like() else {
            self.wrong_type(diag, key, item, "a table of strings");
            return None;
        };
        let mut out = std::collections::BTreeMap::new();
        let mut ok = true;
        for (k, v) in table.iter() {
            let line = diag.line(table.key(k).and_then(|k| k.span()));
            match v.as_str() {
                Some(s) => {
                    out.insert(k.to_string(), s.to_string());
                }
                None => {
                    let found = match v.as_value() {
                        Some(v) => format!("{} `{}`", v.type_name(), v.to_string().trim()),
                        None => v.type_name().to_string(),
                    };
                    let msg = format!("expected a string, found {found}");
                    diag.push(line, &format!("{}.{k}", self.key_path(key)), msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Reads an array of strings; an absent optional key reads as `None`.
    pub fn strings(&self, diag: &mut Diag, key: &str) -> Option<Vec<Spanned<String>>> {
        let Some(item) = self.table.get(key) else {
            if self.spec_of(key).need == Need::Required {
                self.missing(diag, key, "");
            }
            return None;
        };
        let Some(array) = item.as_array() else {
            self.wrong_type(diag, key, item, "an array of strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            let line = diag.line(v.span());
            match v.as_str() {
                Some(s) => out.push(Spanned {
                    value: s.to_string(),
                    line,
                }),
                None => {
                    let found = format!("{} `{}`", v.type_name(), v.to_string().trim());
                    let msg = format!("expected a string, found {found}");
                    diag.push(line, &format!("{}[{i}]", self.key_path(key)), msg);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// Returns a nested table; records an error if it is required and
    /// missing, or is not a table.
    pub fn table(&self, diag: &mut Diag, key: &str) -> Option<View<'a>> {
        let spec = self.spec_of(key);
        let crate::schema::Shape::Table(child) = spec.shape else {
            panic!("schema bug: `{key}` is not a table");
        };
        let Some(item) = self.table.get(key) else {
            if spec.need == Need::Required {
                let msg = format!("missing required table {}; add it", child.header);
                diag.push(self.line, &self.key_path(key), msg);
            }
            return None;
        };
        let Some(table) = item.as_table_like() else {
            self.wrong_type(diag, key, item, &format!("a table {}", child.header));
            return None;
        };
        let line = diag.line(item.span()).or(self.key_line(diag, key));
        Some(View {
            table,
            spec: child,
            path: self.key_path(key),
            line,
        })
    }

    /// Like [`Self::table`], but an absent table reads as `empty`, so that
    /// its keys take their schema defaults.
    pub fn table_or_empty(
        &self,
        diag: &mut Diag,
        key: &str,
        empty: &'a dyn TableLike,
    ) -> Option<View<'a>> {
        if self.has(key) {
            return self.table(diag, key);
        }
        let crate::schema::Shape::Table(child) = self.spec_of(key).shape else {
            panic!("schema bug: `{key}` is not a table");
        };
        Some(View {
            table: empty,
            spec: child,
            path: self.key_path(key),
            line: self.line,
        })
    }

    /// Returns the tables of an array of tables; empty when absent.
    pub fn tables(&self, diag: &mut Diag, key: &str) -> Vec<View<'a>> {
        let spec = self.spec_of(key);
        let crate::schema::Shape::TableArray(child) = spec.shape else {
            panic!("schema bug: `{key}` is not an array of tables");
        };
        let Some(item) = self.table.get(key) else {
            return Vec::new();
        };
        let Some(elements) = table_elements(item) else {
            self.wrong_type(
                diag,
                key,
                item,
                &format!("an array of tables {}", child.header),
            );
            return Vec::new();
        };
        elements
            .into_iter()
            .enumerate()
            .map(|(i, (table, span))| View {
                table,
                spec: child,
                path: format!("{}[{i}]", self.key_path(key)),
                line: diag.line(span),
            })
            .collect()
    }
}
