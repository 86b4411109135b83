//! A call's body that asks, as the connection takes its bytes, whether the call may still
//! leave: the last moment Runboard can hold a call back. Every await before it (a token, a
//! connection from the pool) is a moment a replica can be frozen in; one that wakes after
//! its lease ran out finds the gate shut here, and the service never sees the request.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Whether a call may still leave this replica.
pub(crate) trait SendGate: Send + Sync {
    fn open(&self) -> bool;
}

/// The gate was shut when the call's bytes were due: nothing of its body was sent.
#[derive(Debug, thiserror::Error)]
#[error("held back: this replica may no longer send the action's calls")]
pub(super) struct HeldBack;

pub(super) struct GatedBody {
    bytes: Option<Bytes>,
    gate: Arc<dyn SendGate>,
}

impl GatedBody {
    pub(super) fn new(bytes: Vec<u8>, gate: Arc<dyn SendGate>) -> Self {
        Self {
            bytes: Some(bytes.into()),
            gate,
        }
    }
}

impl Body for GatedBody {
    type Data = Bytes;
    type Error = HeldBack;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HeldBack>>> {
        let Some(bytes) = self.bytes.take() else {
            return Poll::Ready(None);
        };
        // Asked in the same poll that writes the bytes to the socket, with no await between.
        Poll::Ready(Some(if self.gate.open() {
            Ok(Frame::data(bytes))
        } else {
            Err(HeldBack)
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_none()
    }

    /// Known, so the request says its length (not chunked), as a plain body would.
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.bytes.as_ref().map_or(0, |b| b.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use serde_json::json;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::graphql_client::{CallError, Credentials, MissionControl};

    struct Switch(AtomicBool);

    impl SendGate for Switch {
        fn open(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// A plain TCP listener stands in for the service: what matters is which bytes reach
    /// it, and a real socket shows that. It reads until the client closes the connection or
    /// the request is whole (its head and as many body bytes as its Content-Length says),
    /// then closes it; the deadline only stops a test that would otherwise hang.
    async fn bytes_received_for(
        gate: Arc<Switch>,
    ) -> (Result<serde_json::Value, CallError>, String) {
        const DEADLINE: Duration = Duration::from_secs(30);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/graphql", listener.local_addr().unwrap());
        let service = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut buffer = [0; 4096];
            tokio::time::timeout(DEADLINE, async {
                while !whole_request(&received) {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => received.extend_from_slice(&buffer[..n]),
                    }
                }
            })
            .await
            .expect("the client closes or sends its whole request");
            String::from_utf8_lossy(&received).into_owned()
        });
        let mission_control = MissionControl::new(url.parse().unwrap(), Credentials::None);
        let answer = tokio::time::timeout(
            DEADLINE,
            mission_control.request_gated(
                "mutation { retry(ids: [\"s-1\"]) { id } }",
                &json!({}),
                &[],
                gate,
            ),
        )
        .await
        .expect("the call ends once the service closes the connection");
        (answer, service.await.unwrap())
    }

    /// Whether `received` holds a request's head and all of the body its head announces.
    fn whole_request(received: &[u8]) -> bool {
        let text = String::from_utf8_lossy(received);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, length)| length.trim().parse::<usize>().ok())
            .is_some_and(|length| body.len() >= length)
    }

    #[tokio::test]
    async fn a_shut_gate_sends_nothing_of_the_call() {
        let (answer, received) = bytes_received_for(Arc::new(Switch(AtomicBool::new(false)))).await;
        assert_eq!(answer, Err(CallError::HeldBack));
        assert!(
            !received.contains("retry"),
            "the service saw the call's body: {received:?}"
        );
    }

    #[tokio::test]
    async fn an_open_gate_sends_the_whole_call_with_its_length() {
        let (_, received) = bytes_received_for(Arc::new(Switch(AtomicBool::new(true)))).await;
        assert!(
            received.contains("retry(ids: [\\\"s-1\\\"])"),
            "{received:?}"
        );
        assert!(
            received.to_ascii_lowercase().contains("content-length:"),
            "{received:?}"
        );
    }
}
