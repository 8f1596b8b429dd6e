//! `docs/config.md` stays in sync with the schema, and its examples load.

use super::Fixture;
use crate::GATEWAY_SCHEMA;
use crate::schema::Need;

const DOCS: &str = include_str!("../../../../docs/config.md");

/// Returns the text of the section under `heading` up to the next heading.
fn section(heading: &str) -> &'static str {
    let start = DOCS
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("docs/config.md lacks heading `{heading}`"));
    let body = &DOCS[start + heading.len() + 2..];
    &body[..body.find("\n#").unwrap_or(body.len())]
}

#[test]
fn every_schema_key_is_documented_with_its_default() {
    for table in GATEWAY_SCHEMA.all_tables() {
        let heading = match table.header {
            "" => "### Top level".to_string(),
            h => format!("### `{h}`"),
        };
        let body = section(&heading);
        for key in table.keys {
            let row = body
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", key.name)))
                .unwrap_or_else(|| panic!("{heading} lacks a row for `{}`", key.name));
            let want = match key.need {
                Need::Default(d) if key.ty == "integer" => format!("`{d}`"),
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

/// Returns the TOML code blocks of the docs, in order.
fn toml_blocks() -> Vec<&'static str> {
    let gateway_part = DOCS.split("\n## Sidecar config\n").next().unwrap();
    gateway_part
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect()
}

#[test]
fn documented_examples_load() {
    let blocks = toml_blocks();
    assert_eq!(blocks.len(), 2);
    let fx = Fixture::new();
    let c = fx
        .load(blocks[0])
        .unwrap_or_else(|e| panic!("complete example: {e}"));
    assert_eq!(c.peers.len(), 2);
    assert!(c.exports_to("onprem-dc1", "default", "payments"));
    assert!(!c.exports_to("onprem-dc1", "billing", "invoices"));
    for f in ["pki/vm-lab/gateway.pem", "pki/vm-lab/gateway.key"] {
        fx.write(f, "-----BEGIN TEST-----\n");
    }
    fx.load(blocks[1])
        .unwrap_or_else(|e| panic!("embedded example: {e}"));
}
