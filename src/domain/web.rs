//! Which browser pages may open a WebSocket session (`web.origins`).

/// Whether a WebSocket upgrade with this `Origin` (and `Host`) header may proceed.
///
/// - No `Origin`: not a browser page (an app, a script); it logs in with a ticket like any
///   TCP client, so it is let in.
/// - `allowed` lists `"*"`: any page.
/// - `allowed` is empty: only pages this server served itself, whose origin's host is the
///   request's `Host`.
/// - Otherwise the origin must be listed exactly (`scheme://host[:port]`, case-insensitive).
pub fn origin_allowed(allowed: &[String], origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else { return true };
    if allowed.iter().any(|a| a == "*") {
        return true;
    }
    if allowed.is_empty() {
        let Some(host) = host else { return false };
        let Some((scheme, rest)) = origin.split_once("://") else { return false };
        return matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") && rest.eq_ignore_ascii_case(host);
    }
    allowed.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_origin_is_not_a_browser_and_is_let_in() {
        assert!(origin_allowed(&[], None, None));
        assert!(origin_allowed(&list(&["https://a.example"]), None, Some("x")));
    }

    #[test]
    fn by_default_only_this_servers_own_pages() {
        assert!(origin_allowed(&[], Some("http://127.0.0.1:7701"), Some("127.0.0.1:7701")));
        assert!(origin_allowed(&[], Some("https://Chat.Example.com"), Some("chat.example.com")));
        assert!(!origin_allowed(&[], Some("http://evil.example"), Some("127.0.0.1:7701")));
        assert!(!origin_allowed(&[], Some("http://127.0.0.1:7702"), Some("127.0.0.1:7701")));
        assert!(!origin_allowed(&[], Some("null"), Some("127.0.0.1:7701")));
        assert!(!origin_allowed(&[], Some("file://127.0.0.1:7701"), Some("127.0.0.1:7701")));
        assert!(!origin_allowed(&[], Some("http://127.0.0.1:7701"), None));
    }

    #[test]
    fn a_list_is_matched_exactly_and_star_allows_all() {
        let l = list(&["https://chat.example.com/", "http://localhost:3000"]);
        assert!(origin_allowed(&l, Some("https://chat.example.com"), Some("im.example.com")));
        assert!(origin_allowed(&l, Some("http://LOCALHOST:3000"), None));
        assert!(!origin_allowed(&l, Some("http://chat.example.com"), Some("im.example.com")));
        assert!(!origin_allowed(&l, Some("https://chat.example.com.evil"), None));
        // A listed origin does not also let in the server's own pages.
        assert!(!origin_allowed(&l, Some("http://im.example.com"), Some("im.example.com")));
        assert!(origin_allowed(&list(&["*"]), Some("http://anything"), None));
    }
}
