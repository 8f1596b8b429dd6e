//! Reading Prometheus text exposition in assertions.

/// Sums the values of metric `name`'s series (lines `name{…} value` or
/// `name value`) whose labels contain every one of `labels` (each written
/// `key="value"`).
pub fn sum(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && labels.iter().all(|x| l.contains(x))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sums_the_series_with_every_label_and_no_other_metric() {
        let text = "# HELP x_total things\n\
                    x_total{a=\"1\",b=\"2\"} 3\n\
                    x_total{a=\"1\",b=\"3\"} 4\n\
                    x_total_created{a=\"1\"} 99\n\
                    y_total{a=\"1\"} 5\n";
        assert_eq!(super::sum(text, "x_total", &[]), 7);
        assert_eq!(super::sum(text, "x_total", &["a=\"1\"", "b=\"3\""]), 4);
        assert_eq!(super::sum(text, "x_total", &["c=\"1\""]), 0);
    }
}
