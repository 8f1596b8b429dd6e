//! `meshgw --help` and every subcommand's help are complete: each command and
//! each option has a description, and each subcommand's usage line names it.

use anyhow::{Result, ensure};
use meshgw_tests::bin;

/// Subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    let Some(start) = help.find("Commands:") else {
        return Vec::new();
    };
    help[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| l.len() - l.trim_start().len() == 2)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// Every command of the binary, found by walking the help texts.
fn commands() -> Result<Vec<Vec<String>>> {
    let mut all = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(cmd) = todo.pop() {
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        args.push("--help");
        let help = bin::run_ok(&args)?;
        for sub in subcommands(&help) {
            let mut next = cmd.clone();
            next.push(sub);
            todo.push(next);
        }
        all.push(cmd);
    }
    Ok(all)
}

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
    let commands = commands()?;
    // The walk must find what the README and docs name, or it checks nothing.
    for expected in [
        "gateway",
        "sidecar",
        "ca workload",
        "check",
        "status",
        "demo",
    ] {
        ensure!(
            commands.iter().any(|c| c.join(" ") == expected),
            "`meshgw {expected}` not found from `meshgw --help`: {commands:?}"
        );
    }
    for cmd in &commands {
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
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
