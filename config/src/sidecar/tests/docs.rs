//! The "Sidecar config" part of `docs/config.md` stays in sync with the
//! schema, and its example loads.

use super::Fixture;
use crate::SIDECAR_SCHEMA;
use crate::schema::Need;

const DOCS: &str = include_str!("../../../../docs/config.md");

/// Returns the sidecar part of the docs.
fn sidecar_docs() -> &'static str {
    let start = DOCS
        .find("\n## Sidecar config\n")
        .expect("docs/config.md lacks `## Sidecar config`");
    &DOCS[start..]
}

/// Returns the text of the section under `heading` up to the next heading.
fn section(heading: &str) -> &'static str {
    let docs = sidecar_docs();
    let start = docs
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/config.md lacks heading `{heading}`"));
    let body = &docs[start + heading.len() + 2..];
    &body[..body.find("\n#").unwrap_or(body.len())]
}

#[test]
fn every_sidecar_key_is_documented_with_its_default() {
    for table in SIDECAR_SCHEMA.all_tables() {
        let heading = match table.header {
            "" => "### Sidecar top level".to_string(),
            h => format!("### Sidecar `{h}`"),
        };
        let body = section(&heading);
        for key in table.keys {
            let row = body
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", key.name)))
                .unwrap_or_else(|| panic!("{heading} lacks a row for `{}`", key.name));
            let want = match key.need {
                Need::Default(d) if key.ty == "integer" || key.ty == "number" => format!("`{d}`"),
                Need::Default(d) => format!("`\"{d}\"`"),
                Need::Required => "required".into(),
                Need::Optional => "optional".into(),
                Need::RequiredWhen(w) => format!("required when {w}"),
            };
            assert!(
                row.contains(&format!("| {want} |")),
                "{heading} `{}`: want default {want}: {row}",
                key.name
            );
        }
        let rows = body.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(
            rows,
            table.keys.len(),
            "{heading} documents keys the schema lacks"
        );
    }
}

#[test]
fn documented_sidecar_example_loads() {
    let blocks: Vec<&str> = sidecar_docs()
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 1);
    let fx = Fixture::new();
    let c = fx
        .load(blocks[0])
        .unwrap_or_else(|e| panic!("sidecar example: {e}"));
    assert_eq!(c.upstreams.len(), 1);
}
