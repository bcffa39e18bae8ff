//! Container lifecycle events for GetContainerEvents: a broadcast channel every subscriber
//! reads from; a slow subscriber misses events rather than blocking the runtime.

use k8s_cri::v1 as cri;
use tokio::sync::broadcast;

/// Lifecycle event kinds (CRI `ContainerEventType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Created = 0,
    Started = 1,
    Stopped = 2,
    Deleted = 3,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub container_id: String,
    pub kind: Kind,
    /// Unix nanoseconds.
    pub created_at: i64,
}

impl Event {
    /// The CRI message (statuses are filled in by the service).
    pub fn to_cri(&self) -> cri::ContainerEventResponse {
        cri::ContainerEventResponse {
            container_id: self.container_id.clone(),
            container_event_type: self.kind as i32,
            created_at: self.created_at,
            pod_sandbox_status: None,
            containers_statuses: Vec::new(),
        }
    }
}

/// The event bus.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Events {
    pub fn new() -> Self {
        Self {
            tx: broadcast::channel(1024).0,
        }
    }

    /// Publishes an event about a container.
    pub fn container(&self, id: &str, kind: Kind) {
        let _ = self.tx.send(Event {
            container_id: id.to_owned(),
            kind,
            created_at: crate::container::runtime::now_ns(),
        });
    }

    /// A new subscription.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn subscribers_see_events_in_order() {
        let ev = Events::new();
        let mut rx = ev.subscribe();
        ev.container("a", Kind::Created);
        ev.container("a", Kind::Started);
        assert_eq!(rx.recv().await.unwrap().kind, Kind::Created);
        let e = rx.recv().await.unwrap();
        assert_eq!((e.container_id.as_str(), e.kind), ("a", Kind::Started));
        assert_eq!(e.to_cri().container_event_type, 1);
    }
}
