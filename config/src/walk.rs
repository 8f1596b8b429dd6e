//! The generic walk of a span-preserving TOML document against a
//! [`TableSpec`]: reports every unknown key, at its line, with the nearest
//! valid key suggested. Type and presence checks are left to the typed
//! readers in [`crate::read`].

use std::ops::Range;

use toml_edit::{Item, TableLike};

use crate::error::Diag;
use crate::schema::{Shape, TableSpec, suggest};

/// Reports every key in `table` (and, recursively, in its nested tables) that
/// `spec` does not allow. `path` is the dotted path of `table` ("" at the top).
pub(crate) fn check_unknown_keys(
    diag: &mut Diag,
    table: &dyn TableLike,
    spec: &'static TableSpec,
    path: &str,
) {
    for (name, item) in table.iter() {
        let key_path = join(path, name);
        let line = diag.line(table.key(name).and_then(|k| k.span()));
        let Some(key) = spec.key(name) else {
            let mut msg = format!("unknown key `{name}`");
            if let Some(near) = suggest(name, spec.keys.iter().map(|k| k.name)) {
                msg.push_str(&format!("; did you mean `{near}`?"));
            }
            let place = if spec.header.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in {}", spec.header)
            };
            msg.push_str(&format!(" (valid keys {place}: {})", spec.key_list()));
            diag.push(line, &key_path, msg);
            continue;
        };
        match key.shape {
            Shape::Value => {}
            Shape::Table(child) => {
                if let Some(t) = item.as_table_like() {
                    check_unknown_keys(diag, t, child, &key_path);
                }
            }
            Shape::TableArray(child) => {
                for (i, (t, _)) in table_elements(item).into_iter().flatten().enumerate() {
                    check_unknown_keys(diag, t, child, &format!("{key_path}[{i}]"));
                }
            }
        }
    }
}

/// One table of an array of tables, with its span in the document.
pub(crate) type Element<'a> = (&'a dyn TableLike, Option<Range<usize>>);

/// Returns the tables of an array of tables — `[[name]]` sections or an
/// inline `name = [{ ... }]` — with the span of each, or `None` if `item`
/// is not one.
pub(crate) fn table_elements(item: &Item) -> Option<Vec<Element<'_>>> {
    if let Some(aot) = item.as_array_of_tables() {
        return Some(
            aot.iter()
                .map(|t| (t as &dyn TableLike, t.span()))
                .collect(),
        );
    }
    let array = item.as_array()?;
    array
        .iter()
        .map(|v| v.as_inline_table().map(|t| (t as &dyn TableLike, v.span())))
        .collect()
}

/// Joins a table path and a key into a dotted path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
