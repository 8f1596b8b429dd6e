//! An error and its causes as one line of text, for messages to operators:
//! many errors here quote their source in their own text already, so a
//! cause whose text is already in the line is left out.

use std::error::Error;

/// Returns `e` and its sources joined by `: ` (tonic's transport error alone
/// says only "transport error").
pub fn chain(e: &dyn Error) -> String {
    join(e.to_string(), e.source())
}

/// Returns `head`, then `first` and each of its sources, joined by `: `,
/// leaving out a cause whose text the line already holds.
pub fn join(head: String, first: Option<&(dyn Error + 'static)>) -> String {
    let mut out = head;
    let mut cur = first;
    while let Some(e) = cur {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, std::io::Error);

    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn joins_causes_once() {
        let io = || std::io::Error::other("connection refused");
        assert_eq!(chain(&Wrap("dialing", io())), "dialing: connection refused");
        assert_eq!(
            chain(&Wrap("dialing failed: connection refused", io())),
            "dialing failed: connection refused"
        );
    }
}
