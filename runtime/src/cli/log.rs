//! Logging setup: `tracing` to stderr, or to the `--log` file as text or as runc-style JSON
//! lines (`{"level":"error","msg":"...","time":"..."}`, what containerd parses).

use std::fmt;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::{CliError, LogFormat};

/// Installs the subscriber; returns true when logging goes to a file.
pub fn init(file: Option<&Path>, format: LogFormat, debug: bool) -> Result<bool, CliError> {
    let level = if debug { Level::DEBUG } else { Level::WARN };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    let Some(path) = file else {
        use std::io::IsTerminal;
        let ansi = std::io::stderr().is_terminal();
        let _ = builder
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .try_init();
        return Ok(false);
    };
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| CliError::Io {
            what: format!("open log file {}", path.display()),
            source,
        })?;
    let writer = Mutex::new(f);
    match format {
        LogFormat::Text => {
            let _ = builder.with_ansi(false).with_writer(writer).try_init();
        }
        LogFormat::Json => {
            let _ = builder
                .event_format(RuncJson)
                .with_writer(writer)
                .try_init();
        }
    }
    Ok(true)
}

/// runc's JSON log line format.
struct RuncJson;

impl<S, N> FormatEvent<S, N> for RuncJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut v = JsonFields(serde_json::Map::new());
        event.record(&mut v);
        let mut obj = v.0;
        let msg = obj.remove("message").unwrap_or_default();
        obj.insert(
            "level".into(),
            event.metadata().level().as_str().to_lowercase().into(),
        );
        obj.insert("msg".into(), msg);
        obj.insert(
            "time".into(),
            crate::state::rfc3339(std::time::SystemTime::now()).into(),
        );
        writeln!(w, "{}", serde_json::Value::Object(obj))
    }
}

struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
