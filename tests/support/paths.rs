//! ancm's two proxy paths in the tests: starting ancm on one (`ANCM_LEAN`), stamping a spec
//! once per path, and checking that the lean run was served by the lean path. Imports nothing
//! from a test module.

use std::path::Path;
use std::process::Command;

use super::{ancm_bin, app_args, raw_exchange, Ancm};

/// The two ways ancm serves a plain HTTP/1.1 client: the lean path (src/proxy/lean/), which
/// takes a request whose head and body are plain and whole, and hyper's path, which takes the
/// rest. `ANCM_LEAN=off` in ancm's environment sends every request hyper's way, so one spec can
/// be held to both (see [`both_paths!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyPath {
    Lean,
    Hyper,
}

impl ProxyPath {
    /// The value of `ANCM_LEAN` that chooses this path.
    fn switch(self) -> &'static str {
        match self {
            ProxyPath::Lean => "on",
            ProxyPath::Hyper => "off",
        }
    }
}

/// The lean path's trace line (src/proxy/lean/mod.rs) when it hands a connection to hyper's
/// path, whatever the reason: a request it does not take (logged just before, as "a request
/// for hyper's path" with its `why`) or one over a limit, which hyper's path answers.
pub const HANDED_TO_HYPER: &str = "the connection goes to hyper";

/// A request the lean path always hands to hyper (TRACE), and hyper answers itself without the
/// app (405): its hand-over line marks a point in ancm's log, so every line logged before it
/// has been read once that line has.
const MARKER: &[u8] =
    b"TRACE /ancm-test-marker HTTP/1.1\r\nHost: marker\r\nConnection: close\r\n\r\n";
/// The `why` the lean path gives for [`MARKER`].
const MARKER_WHY: &str = "CONNECT or TRACE";

/// Stamps a test body twice, as `NAME::lean` and `NAME::hyper`: once with ancm's lean HTTP/1.1
/// path on and once with it off (`ANCM_LEAN`), so both paths are held to one spec. The body
/// gets the path as `PATH` and starts ancm with [`Ancm::on`] or [`Ancm::run_app_on`]. As
/// ripgrep's `rgtest!` runs each test on both regex engines.
///
/// ```ignore
/// both_paths! {
///     /// What the spec claims.
///     fn header_contract(path) { let ancm = Ancm::run_app_on(path, &app, &[]); ... }
/// }
/// ```
macro_rules! both_paths {
    ($(#[$attr:meta])* fn $name:ident($path:ident) $body:block) => {
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn spec($path: $crate::support::ProxyPath) $body

            #[test]
            fn lean() {
                spec($crate::support::ProxyPath::Lean);
            }

            #[test]
            fn hyper() {
                spec($crate::support::ProxyPath::Hyper);
            }
        }
    };
}
pub(crate) use both_paths;

impl Ancm {
    /// Like [`Ancm::run`], with the lean path on or off as `path` says. On the lean path ancm
    /// also logs each request it hands to hyper, for [`Ancm::assert_lean_served`].
    pub fn on(path: ProxyPath, args: &[&str]) -> Ancm {
        let mut command = Command::new(ancm_bin());
        let log = match path {
            ProxyPath::Lean => "info,ancm::proxy::lean=trace",
            ProxyPath::Hyper => "info",
        };
        command.env("ANCM_LOG", log).env("ANCM_LEAN", path.switch());
        let mut ancm = Ancm::run_with(command, args);
        ancm.path = Some(path);
        ancm
    }

    /// [`Ancm::run_app`] on `path`.
    pub fn run_app_on(path: ProxyPath, app: &impl AsRef<Path>, extra: &[&str]) -> Ancm {
        Ancm::on(path, &app_args(app, extra))
    }

    /// For a spec that claims the lean path serves what it sent: on the lean run, fails the
    /// test if any request so far was handed to hyper's path. Call it before a test sends
    /// requests the lean path hands over by design. Nothing to check on hyper's run.
    pub fn assert_lean_served(&self, what: &str) {
        use std::sync::atomic::Ordering;
        if self.path != Some(ProxyPath::Lean) {
            return;
        }
        let markers = self.markers.fetch_add(1, Ordering::SeqCst) + 1;
        let answer = raw_exchange(self.addr(), MARKER);
        assert!(answer.starts_with("HTTP/1.1 405"), "the marker: {answer}");
        // The marker's hand-over line follows the line giving its reason.
        let mut handed = Vec::new();
        self.stderr
            .wait_until("the marker's hand-over line", |lines| {
                let Some((reason, _)) = lines
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.contains(MARKER_WHY))
                    .nth(markers - 1)
                else {
                    return false;
                };
                let Some(own) = lines[reason..]
                    .iter()
                    .position(|l| l.contains(HANDED_TO_HYPER))
                else {
                    return false;
                };
                handed = lines[..reason + own + 1]
                    .iter()
                    .filter(|l| l.contains(HANDED_TO_HYPER))
                    .cloned()
                    .collect();
                true
            });
        let others = handed.len() - markers;
        let reasons: Vec<String> = self
            .stderr()
            .into_iter()
            .filter(|l| l.contains("a request for hyper's path") && !l.contains(MARKER_WHY))
            .collect();
        assert!(
            others == 0,
            "{what}: the lean path handed {others} connection(s) to hyper's: {reasons:?}"
        );
    }
}
