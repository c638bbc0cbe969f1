//! The app's virtual path (`--app-path /BASE`): as IIS, ancm gives the app only the requests
//! under it, and with `--strip-app-path` forwards them without it, for apps that do not know
//! their base, naming it in X-Forwarded-Prefix instead.

use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri};

pub(super) const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
const X_FORWARDED_PREFIX_BYTES: &[u8] = b"x-forwarded-prefix";

/// A base other than `/`, worked out once when the proxy starts.
pub(super) struct AppBase {
    /// `/base`: starts with `/`, no trailing `/`.
    base: String,
    /// The X-Forwarded-Prefix value when the base is stripped.
    prefix: Option<HeaderValue>,
}

/// Where a request's path falls.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// Not under the base: not the app's to answer.
    Outside,
    /// Under the base, forwarded as it came.
    Inside,
    /// Under the base, forwarded with this path instead.
    Stripped(PathAndQuery),
}

impl AppBase {
    /// `None` for `/`, which holds every path; `appl_path` is config's (`/` or `/base`).
    pub(super) fn new(appl_path: &str, strip: bool) -> Option<AppBase> {
        if appl_path == "/" {
            return None;
        }
        // Config only takes a base that is a valid path, so it is a valid header value too.
        let prefix = strip
            .then(|| HeaderValue::from_str(appl_path).ok())
            .flatten();
        Some(AppBase {
            base: appl_path.to_owned(),
            prefix,
        })
    }

    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// The X-Forwarded-Prefix to set, when the base is stripped.
    pub(super) fn prefix(&self) -> Option<&HeaderValue> {
        self.prefix.as_ref()
    }

    /// `uri`'s path is the base or below it (`/base`, `/base/...`), ignoring ASCII case as
    /// IIS does; one compare of the base's length.
    pub(super) fn route(&self, uri: &Uri) -> Route {
        let path = uri.path();
        let Some(rest) = self.rest(path) else {
            return Route::Outside;
        };
        if self.prefix.is_none() {
            return Route::Inside;
        }
        let rest = if rest.is_empty() { "/" } else { rest };
        let stripped = match uri.query() {
            Some(query) => PathAndQuery::try_from(format!("{rest}?{query}")),
            None => PathAndQuery::try_from(rest),
        };
        // What is left of a valid path and query is one too.
        stripped.map_or(Route::Inside, Route::Stripped)
    }

    /// The same rule for the lean path, on an origin-form `target` as the client sent it (path
    /// and query), with no allocation: the rest after the base is a slice of it.
    pub(super) fn target<'t>(&self, target: &'t str) -> Target<'t> {
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        if self.rest(path).is_none() {
            return Target::Outside;
        }
        if self.prefix.is_none() {
            return Target::AsItCame;
        }
        Target::Stripped(&target[self.base.len()..])
    }

    /// What follows the base in `path` (empty or from a `/`); `None` when `path` is not under
    /// the base.
    fn rest<'p>(&self, path: &'p str) -> Option<&'p str> {
        let base = self.base.as_bytes();
        let inside = path.len() >= base.len()
            && path.as_bytes()[..base.len()].eq_ignore_ascii_case(base)
            && matches!(path.as_bytes().get(base.len()), None | Some(b'/'));
        // Equal to the base but for ASCII case, and followed by `/` or nothing: a char boundary.
        inside.then(|| &path[base.len()..])
    }

    /// Rewrites a request head the lean path wrote for the app (`head`: request line, header
    /// lines, blank line, then `body_len` bytes of body) as hyper's path forwards it under
    /// `--strip-app-path`: the target without the base (`rest`, from [`AppBase::target`], with a
    /// `/` before it when it has none), the client's X-Forwarded-Prefix lines dropped and ours
    /// added. `method_len` and `target_len` are the request line's method and target as sent.
    pub(super) fn strip_head(
        &self,
        head: &mut Vec<u8>,
        method_len: usize,
        target_len: usize,
        rest: &str,
        body_len: usize,
    ) {
        let Some(prefix) = &self.prefix else { return };
        let target = method_len + 1..method_len + 1 + target_len;
        let slash: &[u8] = if rest.starts_with('/') { b"" } else { b"/" };
        head.splice(target, slash.iter().chain(rest.as_bytes()).copied());
        // Header lines from the end of the request line to the blank line.
        let mut line = head
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(0, |at| at + 2);
        let mut end = head.len() - body_len - 2;
        while line < end {
            let next = head[line..end]
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(end, |at| line + at + 2);
            let name = X_FORWARDED_PREFIX_BYTES;
            let theirs = head.len() > line + name.len()
                && head[line..line + name.len()].eq_ignore_ascii_case(name)
                && head[line + name.len()] == b':';
            if theirs {
                head.drain(line..next);
                end -= next - line;
            } else {
                line = next;
            }
        }
        let ours = [X_FORWARDED_PREFIX_BYTES, b": ", prefix.as_bytes(), b"\r\n"];
        head.splice(end..end, ours.into_iter().flatten().copied());
    }
}

/// Where a lean request's target falls.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target<'t> {
    /// Not under the base: hyper's path answers 404.
    Outside,
    /// Under the base, forwarded as it came.
    AsItCame,
    /// Under the base, to be stripped: the rest of the target (`/x?q`, `?q` or empty).
    Stripped(&'t str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(base: &AppBase, uri: &str) -> Route {
        base.route(&uri.parse().expect("uri"))
    }

    fn stripped(path: &str) -> Route {
        Route::Stripped(PathAndQuery::try_from(path).expect("path"))
    }

    #[test]
    fn root_holds_everything() {
        assert!(AppBase::new("/", true).is_none());
    }

    #[test]
    fn only_the_base_and_below_are_inside() {
        let base = AppBase::new("/shop", false).expect("base");
        for inside in [
            "/shop",
            "/shop/",
            "/SHOP/cart?x=1",
            "/Shop/a/b",
            "http://h/shop/x",
        ] {
            assert_eq!(route(&base, inside), Route::Inside, "{inside}");
        }
        for outside in ["/", "/shopping", "/sho", "/other/shop", "/shop.json", "*"] {
            assert_eq!(route(&base, outside), Route::Outside, "{outside}");
        }
        assert_eq!(base.prefix(), None);
    }

    #[test]
    fn stripping_leaves_the_rest_of_the_path_and_the_query() {
        let base = AppBase::new("/shop", true).expect("base");
        assert_eq!(route(&base, "/shop"), stripped("/"));
        assert_eq!(route(&base, "/shop/"), stripped("/"));
        assert_eq!(route(&base, "/Shop/cart/1"), stripped("/cart/1"));
        assert_eq!(route(&base, "/shop?x=1&y"), stripped("/?x=1&y"));
        assert_eq!(route(&base, "/shop/a?q"), stripped("/a?q"));
        assert_eq!(route(&base, "/shopx"), Route::Outside);
        assert_eq!(
            base.prefix().map(HeaderValue::as_bytes),
            Some(&b"/shop"[..])
        );
    }

    #[test]
    fn the_lean_rule_is_the_same_on_targets() {
        let kept = AppBase::new("/shop", false).expect("base");
        assert_eq!(kept.target("/SHOP/cart?x=1"), Target::AsItCame);
        for outside in ["/", "/shopping?x", "/sho", "/other/shop", "/shop.json"] {
            assert_eq!(kept.target(outside), Target::Outside, "{outside}");
        }
        let base = AppBase::new("/shop", true).expect("base");
        assert_eq!(base.target("/shop"), Target::Stripped(""));
        assert_eq!(base.target("/Shop/cart/1"), Target::Stripped("/cart/1"));
        assert_eq!(base.target("/shop?x=1&y"), Target::Stripped("?x=1&y"));
        assert_eq!(base.target("/shopx?/shop"), Target::Outside);
    }

    #[test]
    fn a_stripped_head_has_the_rest_of_the_target_and_our_prefix_only() {
        let base = AppBase::new("/shop", true).expect("base");
        for (target, rest, forwarded) in [
            ("/Shop/a?q", "/a?q", "/a?q"),
            ("/shop?q", "?q", "/?q"),
            ("/shop", "", "/"),
        ] {
            let mut head = format!(
                "GET {target} HTTP/1.1\r\nHost: h\r\nX-Forwarded-Prefix: /forged\r\nX-App: v\r\nx-forwarded-prefix: /again\r\nms-aspnetcore-token: t\r\n\r\nbody"
            )
            .into_bytes();
            base.strip_head(&mut head, 3, target.len(), rest, 4);
            assert_eq!(
                String::from_utf8(head).expect("text"),
                format!("GET {forwarded} HTTP/1.1\r\nHost: h\r\nX-App: v\r\nms-aspnetcore-token: t\r\nx-forwarded-prefix: /shop\r\n\r\nbody"),
                "{target}"
            );
        }
    }
}
