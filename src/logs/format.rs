//! The console's line format, for the app's lines and ancm's own log alike: text, or with
//! `--log-format json` one JSON object per line (`{"time", "level", "message", "fields"}`), as
//! log shippers read them. logging.rs formats ancm's log with [`ConsoleLines`]; the console
//! formats the app's lines with [`json_line`]. Must not import logging.rs.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::format::{Compact, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log-format json` is in force: set once, before the app starts.
static JSON: AtomicBool = AtomicBool::new(false);

/// From now on, every console line (ancm's and the app's) is one JSON object, for log
/// shippers.
pub(crate) fn use_json() {
    JSON.store(true, Ordering::Relaxed);
}

/// Whether console lines are JSON objects.
pub(crate) fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// ancm's console lines: compact text, or with `--log-format json` one object per line:
/// `{"time", "level", "message", "fields": {...}}`.
pub(crate) struct ConsoleLines {
    text: Format<Compact, tracing_subscriber::fmt::time::SystemTime>,
}

impl ConsoleLines {
    pub(crate) fn new() -> ConsoleLines {
        ConsoleLines {
            text: tracing_subscriber::fmt::format()
                .compact()
                .with_target(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for ConsoleLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if !json() {
            return self.text.format_event(ctx, writer, event);
        }
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let line = json_line(
            event.metadata().level().as_str(),
            &fields.message,
            fields.fields,
        );
        writeln!(writer, "{line}")
    }
}

/// One console line as JSON.
pub(crate) fn json_line(
    level: &str,
    message: &str,
    fields: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "time": time,
        "level": level,
        "message": message,
        "fields": fields,
    })
}

/// An event's message and fields, numbers and booleans kept as such.
#[derive(Default)]
struct JsonFields {
    message: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        } else {
            self.fields.insert(field.name().to_owned(), value.into());
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_owned(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .insert(field.name().to_owned(), format!("{value:?}").into());
        }
    }
}
