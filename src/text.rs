//! Small text helpers shared by messages: shortening, one-line forms, URLs without credentials.

/// `s` cut to its first `max` characters, with `…` added when anything was cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// `s` with every control character (line breaks included) turned into a space.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `url` fit to be shown: when it holds an `@`, everything between the scheme and the last `@`
/// (the credentials, `user:password`) becomes `<redacted>`. The last `@` is taken, and the
/// path is not told apart from the authority, so that a password holding `@`, `/`, `?` or `#`
/// never shows; a host is hidden only when the path holds an `@`.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    match (scheme, rest.rsplit_once('@')) {
        (_, None) => url.to_string(),
        (None, Some((_, host))) => format!("<redacted>@{host}"),
        (Some(scheme), Some((_, host))) => format!("{scheme}://<redacted>@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("日本語です", 2), "日本…");
        assert_eq!(truncate("", 0), "");
    }

    #[test]
    fn one_line_turns_controls_into_spaces() {
        assert_eq!(one_line("a\nb\r\tc\u{7f}"), "a b  c ");
    }

    #[test]
    fn redaction_never_shows_credentials() {
        assert_eq!(
            redact_url("http://u:p@proxy:3128/x"),
            "http://<redacted>@proxy:3128/x"
        );
        assert_eq!(redact_url("http://proxy:3128"), "http://proxy:3128");
        assert_eq!(redact_url("u:p@proxy"), "<redacted>@proxy");
        assert_eq!(redact_url(""), "");
        // Characters a careless URL leaves unescaped in a password.
        for url in [
            "http://u:pa/ss@proxy:3128",
            "http://u:pa@ss@proxy:3128",
            "http://u:pa#ss@proxy:3128",
            "http://u:pa?ss@proxy:3128",
        ] {
            let shown = redact_url(url);
            assert_eq!(shown, "http://<redacted>@proxy:3128", "{url}");
            assert!(!shown.contains("pa"), "{shown}");
        }
    }
}
