//! The app's virtual path (`--app-path /BASE`): as IIS, ancm gives the app only the requests
//! under it, and with `--strip-app-path` forwards them without it, for apps that do not know
//! their base, naming it in X-Forwarded-Prefix instead.

use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri};

pub(super) const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

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
        let base = self.base.as_bytes();
        let inside = path.len() >= base.len()
            && path.as_bytes()[..base.len()].eq_ignore_ascii_case(base)
            && matches!(path.as_bytes().get(base.len()), None | Some(b'/'));
        if !inside {
            return Route::Outside;
        }
        if self.prefix.is_none() {
            return Route::Inside;
        }
        let rest = &path[base.len()..];
        let rest = if rest.is_empty() { "/" } else { rest };
        let stripped = match uri.query() {
            Some(query) => PathAndQuery::try_from(format!("{rest}?{query}")),
            None => PathAndQuery::try_from(rest),
        };
        // What is left of a valid path and query is one too.
        stripped.map_or(Route::Inside, Route::Stripped)
    }
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
}
