//! A pod's port-forward: the WebSocket stream the API server upgrades to, carried to the
//! pod's port on loopback.

use super::*;

/// `pods/portforward` for one port: data on channel 0, errors on channel 1, each opened
/// with the port number (little-endian), as the kubelet does.
pub(super) async fn port_forward(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let port: Option<u16> = query.get("ports").and_then(|p| p.parse().ok());
    let address = {
        let objects = shared.objects.lock().unwrap();
        let pod = objects.pods.get(&(namespace.clone(), name.clone()));
        match (pod, port) {
            (None, _) => {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                );
            }
            (Some(pod), Some(port)) => pod.ports.get(&port).copied(),
            (Some(_), None) => None,
        }
    };
    let (Some(port), Some(address)) = (port, address) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the pod has no such port",
        );
    };
    upgrade
        .protocols(["v4.channel.k8s.io"])
        .on_upgrade(move |socket| async move {
            let forward = tokio::spawn(carry(socket, port, address));
            match shared
                .objects
                .lock()
                .unwrap()
                .pods
                .get_mut(&(namespace, name))
            {
                Some(pod) => pod.forwards.push(forward.abort_handle()),
                None => forward.abort(),
            }
        })
}

/// Carries the port-forward's channel 0 to and from a connection to `address`.
async fn carry(socket: axum::extract::ws::WebSocket, port: u16, address: std::net::SocketAddr) {
    use axum::extract::ws::Message;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (mut to_client, mut from_client) = socket.split();
    let [low, high] = port.to_le_bytes();
    for channel in [0, 1] {
        if to_client
            .send(Message::Binary(vec![channel, low, high].into()))
            .await
            .is_err()
        {
            return;
        }
    }
    let Ok(connection) = tokio::net::TcpStream::connect(address).await else {
        let _ = to_client
            .send(Message::Binary(
                [&[1u8][..], b"connection refused"].concat().into(),
            ))
            .await;
        return;
    };
    let (mut reading, mut writing) = connection.into_split();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            message = from_client.next() => match message {
                Some(Ok(Message::Binary(data))) if data.len() > 1 && data[0] == 0 => {
                    if writing.write_all(&data[1..]).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            read = reading.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut frame = Vec::with_capacity(n + 1);
                    frame.push(0);
                    frame.extend_from_slice(&buffer[..n]);
                    if to_client.send(Message::Binary(frame.into())).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = to_client.send(Message::Close(None)).await;
}
