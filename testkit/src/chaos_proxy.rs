//! A TCP proxy in front of a test database that a test can cut, restore or slow down,
//! to see what users see when a database goes away or crawls (after crates.io's `ChaosProxy`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ChaosProxy {
    port: u16,
    cut: watch::Sender<bool>,
    /// Delay added before each chunk the database sends back, in milliseconds.
    latency_ms: Arc<AtomicU64>,
}

impl ChaosProxy {
    /// Starts proxying a loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let (cut, _) = watch::channel(false);
        let latency_ms = Arc::new(AtomicU64::new(0));
        let proxy = Arc::new(Self {
            port,
            cut,
            latency_ms: latency_ms.clone(),
        });
        let cut_signal = proxy.cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if *cut_signal.borrow() {
                    // While cut, connections are accepted and dropped at once, as a dead host would.
                    continue;
                }
                let mut is_cut = cut_signal.subscribe();
                let latency_ms = latency_ms.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let no_delay = Arc::new(AtomicU64::new(0));
                    tokio::select! {
                        _ = pump(&mut client_read, &mut server_write, &no_delay) => {}
                        _ = pump(&mut server_read, &mut client_write, &latency_ms) => {}
                        _ = is_cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Delays every answer from the database by `latency`, as a slow or overloaded server would.
    pub fn slow_down(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Copies one direction of a connection, waiting `delay_ms` before each chunk.
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    delay_ms: &AtomicU64,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        let delay = delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        to.write_all(&buffer[..n]).await?;
    }
}
