//! `meshgw --help` and every subcommand's help are complete: each command and
//! each option has a description, and each subcommand's usage line names it.

use anyhow::{Result, ensure};
use meshgw_tests::bin;

/// Every command the binary has, as the words that select it.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["gateway"],
    &["sidecar"],
    &["ca"],
    &["ca", "init"],
    &["ca", "cluster"],
    &["ca", "gateway"],
    &["ca", "workload"],
    &["check"],
    &["status"],
    &["demo"],
];

/// Lines of a clap help section (`Commands:` or `Options:`) that name an
/// entry but give it no description.
fn undescribed(help: &str, section: &str) -> Vec<String> {
    let Some(start) = help.find(section) else {
        return Vec::new();
    };
    help[start + section.len()..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| {
            // "  -c, --config <CONFIG>  Description": an entry, 2+ spaces, text.
            // Wrapped description lines are indented further: not entries.
            let entry = l.trim_start();
            let indent = l.len() - entry.len();
            indent <= 6
                && entry
                    .split_once("  ")
                    .is_none_or(|(_, text)| text.trim().is_empty())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_and_option_has_help_text() -> Result<()> {
    let top = bin::run_ok(&["--help"])?;
    for cmd in COMMANDS.iter().filter(|c| c.len() == 1) {
        ensure!(
            top.lines().any(|l| l.trim_start().starts_with(cmd[0])),
            "`meshgw --help` does not list `{}`:\n{top}",
            cmd[0]
        );
    }
    for cmd in COMMANDS {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = bin::run_ok(&args)?;
        let usage = format!("Usage: meshgw {}", cmd.join(" "));
        ensure!(
            help.contains(usage.trim_end()),
            "`meshgw {}` help has no usage line `{usage}`:\n{help}",
            args.join(" ")
        );
        let first = help.lines().next().unwrap_or_default();
        ensure!(
            !first.trim().is_empty() && !first.starts_with("Usage"),
            "`meshgw {}` has no description:\n{help}",
            args.join(" ")
        );
        for section in ["Commands:", "Options:"] {
            let bare = undescribed(&help, section);
            ensure!(
                bare.is_empty(),
                "`meshgw {}`: {section} entries without a description: {bare:?}\n{help}",
                args.join(" ")
            );
        }
    }
    Ok(())
}

#[test]
fn a_bare_option_is_caught() {
    let help = "Does things\n\nUsage: meshgw x\n\nOptions:\n  -c, --config <CONFIG>  The file\n      --bare\n                         wrapped text of the line above\n  -h, --help  Print help\n";
    assert_eq!(
        undescribed(help, "Options:"),
        vec!["      --bare".to_string()]
    );
}
