//! The static description of a config file: which keys each table allows,
//! their types, defaults and meaning. One schema per config kind (see
//! [`crate::gateway::GATEWAY_SCHEMA`]); the generic walker checks a
//! parsed file against it, the typed readers take defaults from it, and a test
//! checks that `docs/config.md` documents every key in it.

/// Whether a key must be present, and what it means when it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The key must be present.
    Required,
    /// The key may be left out; this is its value then, in file syntax
    /// (e.g. `"5s"`), parsed exactly like a value written in the file.
    Default(&'static str),
    /// The key may be left out, and then has no value.
    Optional,
    /// The key is required only in the situation described, e.g.
    /// `kind = "etcd"`; checked by the typed reader.
    RequiredWhen(&'static str),
}

/// What kind of TOML item a key holds.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A plain value: string, array of strings, etc.
    Value,
    /// A table, `[name]`, described by the nested spec.
    Table(&'static TableSpec),
    /// An array of tables, `[[name]]`, each described by the nested spec.
    TableArray(&'static TableSpec),
}

/// One allowed key of a table.
#[derive(Debug)]
pub struct KeySpec {
    /// The key as written in the file.
    pub name: &'static str,
    /// What kind of item it holds.
    pub shape: Shape,
    /// The value's type as shown to operators, e.g. `duration`, `"host:port"`.
    pub ty: &'static str,
    /// Whether it is required, and its default.
    pub need: Need,
    /// One-line meaning, as documented.
    pub doc: &'static str,
}

/// The allowed keys of one table.
#[derive(Debug)]
pub struct TableSpec {
    /// How the table is written in a file, e.g. `[store.tls]` or `[[peers]]`;
    /// empty for the top level.
    pub header: &'static str,
    /// The allowed keys, in documentation order.
    pub keys: &'static [KeySpec],
}

impl KeySpec {
    /// Describes a plain value key.
    pub const fn value(
        name: &'static str,
        ty: &'static str,
        need: Need,
        doc: &'static str,
    ) -> Self {
        KeySpec {
            name,
            shape: Shape::Value,
            ty,
            need,
            doc,
        }
    }

    /// Describes a nested table `[name]`.
    pub const fn table(
        name: &'static str,
        spec: &'static TableSpec,
        need: Need,
        doc: &'static str,
    ) -> Self {
        KeySpec {
            name,
            shape: Shape::Table(spec),
            ty: "table",
            need,
            doc,
        }
    }

    /// Describes an optional array of tables `[[name]]`.
    pub const fn tables(name: &'static str, spec: &'static TableSpec, doc: &'static str) -> Self {
        let (shape, need) = (Shape::TableArray(spec), Need::Optional);
        KeySpec {
            name,
            shape,
            ty: "array of tables",
            need,
            doc,
        }
    }
}

impl TableSpec {
    /// Returns the spec of `name`, if the table allows it.
    pub fn key(&self, name: &str) -> Option<&'static KeySpec>
    where
        Self: 'static,
    {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Returns this table and every table nested in it, depth first.
    pub fn all_tables(&'static self) -> Vec<&'static TableSpec> {
        let mut out = vec![self];
        for key in self.keys {
            if let Shape::Table(t) | Shape::TableArray(t) = key.shape {
                out.extend(t.all_tables());
            }
        }
        out
    }

    /// Returns the allowed key names, comma separated, for error messages.
    pub fn key_list(&self) -> String {
        let names: Vec<&str> = self.keys.iter().map(|k| k.name).collect();
        names.join(", ")
    }
}

/// Returns the candidate closest to `input` by edit distance, if one is close
/// enough to be a plausible typo (distance at most 2, or a third of the
/// input's length for longer names).
pub fn suggest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(input, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::suggest;

    #[test]
    fn suggests_nearest_and_only_when_close() {
        let keys = ["mesh", "cluster", "listen", "store", "peers"];
        assert_eq!(suggest("lisen", keys), Some("listen"));
        assert_eq!(suggest("peer", keys), Some("peers"));
        assert_eq!(suggest("clsuter", keys), Some("cluster"));
        assert_eq!(suggest("frobnicate", keys), None);
    }
}
