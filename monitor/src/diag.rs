//! The monitor's own diagnostics: a minimal `tracing` subscriber writing one line per event to
//! stderr (`<timestamp> <LEVEL> cri-monitor: <message> key=value...`).
//!
//! tracing-subscriber's formatter would be the usual choice, but this process runs once per
//! container and its code pages are most of its RSS; this subscriber is a few hundred bytes of
//! code. Spans are not used by the monitor and are ignored. The level comes from
//! `CRI_MONITOR_LOG` (error, warn, info, debug, trace; default warn).

use crate::clock;
use std::fmt::{self, Write as _};
use std::io::Write;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Installs the subscriber as the global default.
pub fn init() {
    let max = std::env::var("CRI_MONITOR_LOG")
        .ok()
        .and_then(|v| v.parse::<Level>().ok())
        .unwrap_or(Level::WARN);
    let _ = tracing::subscriber::set_global_default(StderrSubscriber { max });
}

struct StderrSubscriber {
    max: Level,
}

/// Collects an event's message and fields into one line.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for StderrSubscriber {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line(format!(
            "{} {} cri-monitor[{}]:",
            clock::now_rfc3339_nano(),
            event.metadata().level(),
            std::process::id()
        ));
        event.record(&mut line);
        line.0.push('\n');
        let _ = std::io::stderr().lock().write_all(line.0.as_bytes());
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_message_and_fields_on_one_line() {
        // Drive the visitor through a real event using a scoped dispatcher.
        struct Capture(std::sync::Mutex<Vec<String>>);
        impl Subscriber for Capture {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &Attributes<'_>) -> Id {
                Id::from_u64(1)
            }
            fn record(&self, _: &Id, _: &Record<'_>) {}
            fn record_follows_from(&self, _: &Id, _: &Id) {}
            fn event(&self, e: &Event<'_>) {
                let mut l = Line(String::new());
                e.record(&mut l);
                self.0.lock().unwrap().push(l.0);
            }
            fn enter(&self, _: &Id) {}
            fn exit(&self, _: &Id) {}
        }
        let cap = std::sync::Arc::new(Capture(Default::default()));
        tracing::subscriber::with_default(cap.clone(), || {
            tracing::warn!(id = "c1", n = 3, "log reopened");
        });
        assert_eq!(cap.0.lock().unwrap()[0], " log reopened id=\"c1\" n=3");
    }
}
