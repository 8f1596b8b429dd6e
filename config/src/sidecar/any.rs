//! Loading a config file of either kind, told apart by its tables: a sidecar
//! config has `[gateway]` (the gateway it uses), a gateway config has
//! `[cluster]` or `[listen]`.

use std::path::Path;

use super::parse::{absolute, read_error};
use super::types::SidecarConfig;
use crate::error::{ConfigError, ConfigErrors};
use crate::gateway::GatewayConfig;

/// A loaded config of either kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnyConfig {
    /// `meshgw gateway --config`.
    Gateway(Box<GatewayConfig>),
    /// `meshgw sidecar --config`.
    Sidecar(Box<SidecarConfig>),
}

/// Reads the config at `path` as a sidecar config if it has a `[gateway]`
/// table, else as a gateway config if it has `[cluster]` or `[listen]`.
/// Returns every problem found; a file that is neither says how to tell.
pub fn load_any(path: &Path) -> Result<AnyConfig, ConfigErrors> {
    let file = absolute(path);
    let text = std::fs::read_to_string(&file).map_err(|e| read_error(file.clone(), &e))?;
    let Ok(doc) = toml_edit::Document::parse(text.as_str()) else {
        // Either loader reports the syntax error with its line.
        return GatewayConfig::from_str_at(&text, &file).map(|c| AnyConfig::Gateway(Box::new(c)));
    };
    let has = |k: &str| doc.as_table().contains_key(k);
    if has("gateway") {
        SidecarConfig::from_str_at(&text, &file).map(|c| AnyConfig::Sidecar(Box::new(c)))
    } else if has("cluster") || has("listen") {
        GatewayConfig::from_str_at(&text, &file).map(|c| AnyConfig::Gateway(Box::new(c)))
    } else {
        Err(ConfigErrors(vec![ConfigError {
            file,
            line: None,
            key: String::new(),
            message: "cannot tell which kind of config this is: a gateway config has a [cluster] table, a sidecar config a [gateway] table (see docs/config.md)".into(),
        }]))
    }
}
